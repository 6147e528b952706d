package signup

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	netmail "net/mail"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/sqin/sqin/internal/keys"
)

// Sender delivers one mail.
type Sender interface {
	Send(ctx context.Context, from string, m *Mail) error
}

// SMTPSender delivers over SMTP (net/smtp), without authentication: the
// relay it speaks to is the operator's (localhost or a trusted network).
type SMTPSender struct {
	Addr    string // host:port
	Timeout time.Duration
}

// Send delivers m to the relay.
func (s SMTPSender) Send(ctx context.Context, from string, m *Mail) error {
	done := make(chan error, 1)
	envelope := from
	if a, err := netmail.ParseAddress(from); err == nil {
		envelope = a.Address
	}
	go func() { done <- smtp.SendMail(s.Addr, nil, envelope, []string{m.To}, Message(from, m)) }()
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("signup: smtp %s: %w", s.Addr, err)
		}
		return nil
	case <-t.C:
		return fmt.Errorf("signup: smtp %s: no answer in %s", s.Addr, timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Message is m as an RFC 5322 message (text/plain, UTF-8, quoted-printable
// free: the body is 8bit, which every relay SQIN talks to accepts).
func Message(from string, m *Mail) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\n", from)
	fmt.Fprintf(&b, "To: %s\r\n", m.To)
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", m.Subject))
	fmt.Fprintf(&b, "Message-ID: <%s@sqin>\r\n", m.ID)
	fmt.Fprintf(&b, "Date: %s\r\n", m.CreatedAt.UTC().Format(time.RFC1123Z))
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	b.WriteString(strings.ReplaceAll(strings.ReplaceAll(m.Body, "\r\n", "\n"), "\n", "\r\n"))
	b.WriteString("\r\n")
	return []byte(b.String())
}

// DirSink is the demo's mail server: each mail becomes a file DIR/<id>.eml
// that the person trying the demo opens to read the code. Nothing leaves
// the machine. Never use it in production.
type DirSink struct {
	Dir string
	Log *slog.Logger
}

// Send writes the mail to the directory.
func (s DirSink) Send(_ context.Context, from string, m *Mail) error {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("signup: mail sink: %w", err)
	}
	path := filepath.Join(s.Dir, m.ID+".eml")
	if err := os.WriteFile(path, Message(from, m), 0o600); err != nil {
		return fmt.Errorf("signup: mail sink: %w", err)
	}
	if s.Log != nil {
		// The path only: the code is in the file, never in the log.
		s.Log.Info("demo mail sink: mail written (open the file to read it)", "kind", m.Kind, "file", path)
	}
	return nil
}

// MemorySink keeps mails in memory (tests).
type MemorySink struct {
	mu    sync.Mutex
	Mails []*Mail
}

// Send keeps a copy of m.
func (s *MemorySink) Send(_ context.Context, _ string, m *Mail) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := *m
	s.Mails = append(s.Mails, &c)
	return nil
}

// Sent returns the mails kept so far.
func (s *MemorySink) Sent() []*Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Mail(nil), s.Mails...)
}

// sealedPrefix marks a body encrypted by SealBody.
const sealedPrefix = "sqin-sealed-v1:"

// SealBody returns m's body encrypted (AES-256-GCM, bound to the mail's
// identifier and recipient) for the outbox: email codes and reset links
// are then never in clear in the database, its replicas or its backups,
// even while the relay is down. The body is erased once sent.
func SealBody(s *keys.Sealer, m *Mail) string {
	return sealedPrefix + base64.RawURLEncoding.EncodeToString(s.Seal([]byte(m.Body), mailAD(m)))
}

// OpenBody returns m's body in clear: as it is when it was not sealed.
func OpenBody(s *keys.Sealer, m *Mail) (string, error) {
	rest, sealed := strings.CutPrefix(m.Body, sealedPrefix)
	if !sealed {
		return m.Body, nil
	}
	if s == nil {
		return "", errors.New("signup: a sealed mail body and no key to open it")
	}
	raw, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return "", fmt.Errorf("signup: sealed mail body: %w", err)
	}
	b, err := s.Open(raw, mailAD(m))
	if err != nil {
		return "", fmt.Errorf("signup: open mail body: %w", err)
	}
	return string(b), nil
}

func mailAD(m *Mail) []byte { return []byte("sqin-mail/v1\x00" + m.ID + "\x00" + m.To) }

// Worker delivers the outbox: it claims due mails with a lease (so that
// several instances share the work), sends them and retries failures with
// exponential backoff (30 s, 1 min, 2 min… up to 1 h) for MaxAttempts.
type Worker struct {
	Store       Store
	Sender      Sender
	Sealer      *keys.Sealer // opens bodies sealed by the Handler's MailSealer
	From        string
	Log         *slog.Logger
	Interval    time.Duration // between polls; default 2 s
	Lease       time.Duration // default 2 min
	MaxAttempts int           // default 8
	Now         func() time.Time

	wake chan struct{}
	once sync.Once
}

func (w *Worker) init() {
	w.once.Do(func() {
		w.wake = make(chan struct{}, 1)
		if w.Interval <= 0 {
			w.Interval = 2 * time.Second
		}
		if w.Lease <= 0 {
			w.Lease = 2 * time.Minute
		}
		if w.MaxAttempts <= 0 {
			w.MaxAttempts = 8
		}
		if w.Now == nil {
			w.Now = time.Now
		}
		if w.Log == nil {
			w.Log = slog.New(slog.DiscardHandler)
		}
	})
}

// Wake asks the worker to look at the outbox now (a mail was queued).
func (w *Worker) Wake() {
	w.init()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends.
func (w *Worker) Run(ctx context.Context) {
	w.init()
	t := time.NewTicker(w.Interval)
	defer t.Stop()
	var pruned time.Time
	for {
		if _, err := w.RunOnce(ctx); err != nil && ctx.Err() == nil {
			w.Log.Warn("mail outbox", "err", err)
		}
		if now := w.Now(); now.Sub(pruned) >= time.Hour {
			// Expired registrations go at once; sent mails after a week
			// (their bodies are already empty).
			pruned = now
			if err := w.Store.PruneSignup(ctx, now, now.Add(-7*24*time.Hour)); err != nil && ctx.Err() == nil {
				w.Log.Warn("signup: prune", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.wake:
		}
	}
}

// RunOnce sends the mails due now and returns how many were sent.
func (w *Worker) RunOnce(ctx context.Context) (int, error) {
	w.init()
	now := w.Now()
	mails, err := w.Store.ClaimMails(ctx, now, w.Lease, 20)
	if err != nil {
		return 0, err
	}
	sent := 0
	var errs []error
	for _, m := range mails {
		body, err := OpenBody(w.Sealer, m)
		if err == nil {
			c := *m
			c.Body = body
			err = w.Sender.Send(ctx, w.From, &c)
		}
		if err != nil {
			next := time.Time{}
			if m.Attempts < w.MaxAttempts {
				next = w.Now().Add(Backoff(m.Attempts))
			}
			w.Log.Warn("mail not delivered", "mail", m.ID, "kind", m.Kind, "attempt", m.Attempts, "retry", !next.IsZero(), "err", err)
			errs = append(errs, w.Store.MailFailed(ctx, m.ID, next, err.Error()))
			continue
		}
		sent++
		errs = append(errs, w.Store.MailSent(ctx, m.ID, w.Now()))
	}
	return sent, errors.Join(errs...)
}

// Backoff is the wait after the nth failed attempt (from 1).
func Backoff(n int) time.Duration {
	d := 30 * time.Second
	for i := 1; i < n && d < time.Hour; i++ {
		d *= 2
	}
	return min(d, time.Hour)
}
