package signup

import (
	"context"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/registry"
)

// Flow is one browser's registration: pending until the email code is
// entered, then bound to the account it created, for the proofing step.
type Flow struct {
	ID            string // keys.Hash of the flow cookie
	Email         string
	PasswordHash  string
	Locale        string
	AuthRequest   string // pending authorization request to resume, "" for none
	CodeHash      string // keys.Hash of the 6-digit code; "" for a duplicate
	CodeExpiresAt time.Time
	Attempts      int
	// Duplicate marks a registration whose email already has an account:
	// it looks the same to the browser but never completes.
	Duplicate       bool
	TermsAcceptedAt time.Time
	AccountID       string // set once the email is verified
	CreatedAt       time.Time
	ExpiresAt       time.Time
}

// Mail is one message of the outbox.
type Mail struct {
	ID        string
	To        string
	Subject   string
	Body      string // text/plain, UTF-8
	Kind      string // code, duplicate, person_taken: for operators, never the content
	CreatedAt time.Time
	Attempts  int
}

// Letter is a one-time code sent by mail to the registry address of the
// person an account claims to be (the proof ProofMailCode).
type Letter struct {
	ID          string
	AccountID   string
	PersonID    string
	Locale      string // language of the letter
	RequestedAt time.Time
	Batch       string    // the export that claimed it, "" while queued
	ClaimedAt   time.Time // when that export claimed it
	CodeHash    string    // LetterCodeHash of the printed code, "" until exported
	ExportedAt  time.Time // printed; zero while queued
	ExpiresAt   time.Time
	Attempts    int // wrong codes entered
	UsedAt      time.Time
	VoidedAt    time.Time
}

// PasswordReset is a password reset link sent by mail.
type PasswordReset struct {
	ID        string // keys.Hash of the token in the link
	AccountID string
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time
}

// Proved is the outcome of ProveAccount.
type Proved struct {
	// OtherAccount is the account that already holds the person (the
	// account is then not linked); "" when the link was made.
	OtherAccount string
	LoA          sqin.LoA
}

// Store is what account creation and proofing need from storage
// (internal/sqlstore implements it on SQLite and PostgreSQL).
type Store interface {
	GetAccount(ctx context.Context, id string) (*sqin.Account, error)
	GetAccountByEmail(ctx context.Context, email string) (*sqin.Account, error)
	GetRegistryEntry(ctx context.Context, personID string) (*registry.Entry, error)

	// CreateSignupFlow stores f and queues mails, in one transaction.
	CreateSignupFlow(ctx context.Context, f *Flow, mails ...*Mail) error
	// GetSignupFlow returns the flow, or sqin.ErrNotFound when missing or
	// expired.
	GetSignupFlow(ctx context.Context, id string, now time.Time) (*Flow, error)
	// CountSignupCodeAttempt adds one to the flow's code attempts and
	// returns the new count (sqin.ErrNotFound when missing or expired).
	CountSignupCodeAttempt(ctx context.Context, id string, now time.Time) (int, error)
	// DeleteSignupFlow deletes the flow (none is not an error).
	DeleteSignupFlow(ctx context.Context, id string) error
	// CompleteSignup creates a in the transaction that binds the flow to
	// it and spends its code; a flow already bound or gone is
	// sqin.ErrNotFound, a taken email sqin.ErrConflict.
	CompleteSignup(ctx context.Context, flowID string, a *sqin.Account, now time.Time) error

	// FindPersonByNameAndBirthDate returns the registry person (present in
	// the source, alive) with that birth date whose family and given names
	// are the same once normalised and case-folded (registry.SameName), or
	// sqin.ErrNotFound.
	FindPersonByNameAndBirthDate(ctx context.Context, family, given, birthDate string) (string, error)
	// AddProof records that the account proved proof for person, and
	// returns every distinct proof the account holds for that person.
	AddProof(ctx context.Context, accountID, personID, proof string, now time.Time) ([]string, error)
	// Proofs returns the distinct proofs the account holds for person.
	Proofs(ctx context.Context, accountID, personID string) ([]string, error)
	// ProveAccount links the account to person at level loa (recording how
	// and when), unless another account already holds the person; then
	// nothing changes and Proved.OtherAccount names it. Queued mails go in
	// the same transaction (mailFor is called with that other account).
	ProveAccount(ctx context.Context, accountID, personID string, loa sqin.LoA, how string, now time.Time,
		mailFor func(other *sqin.Account) *Mail) (Proved, error)

	// PersonAccount returns the account other than accountID that holds
	// the registry person, or sqin.ErrNotFound.
	PersonAccount(ctx context.Context, personID, accountID string) (*sqin.Account, error)
	// QueueLetter stores a letter request unless the account has one
	// queued (not printed, not voided) already; it reports whether l was
	// stored. Mails are queued in the same transaction.
	QueueLetter(ctx context.Context, l *Letter, mails ...*Mail) (bool, error)
	// PendingLetters returns the account's letters that are queued, or
	// printed and still usable at now, oldest first.
	PendingLetters(ctx context.Context, accountID string, now time.Time) ([]*Letter, error)
	// ClaimLetters marks up to n queued letters (and letters claimed by an
	// export that did not finish before staleBefore) as claimed by batch,
	// and returns them.
	ClaimLetters(ctx context.Context, batch string, now, staleBefore time.Time, n int) ([]*Letter, error)
	// LettersExported records the printed letters of batch: each letter's
	// code hash (by letter ID) and expiry, in one transaction; letters of
	// the batch missing from hashes are voided (not printable).
	LettersExported(ctx context.Context, batch string, hashes map[string]string, now, expires time.Time) error
	// BatchExported reports whether batch's export committed.
	BatchExported(ctx context.Context, batch string) (bool, error)
	// LetterAttempt counts a wrong code against the letter and voids it at
	// max attempts; it returns the new count.
	LetterAttempt(ctx context.Context, id string, max int, now time.Time) (int, error)
	// UseLetter spends the letter (printed, unexpired, unused, not voided)
	// and records the proof proof for its person, in one transaction; it
	// returns the account's proofs for that person. A letter that cannot
	// be spent is sqin.ErrNotFound.
	UseLetter(ctx context.Context, id, proof string, now time.Time) ([]string, error)

	// CreatePasswordReset stores r and queues mails in one transaction.
	CreatePasswordReset(ctx context.Context, r *PasswordReset, mails ...*Mail) error
	// GetPasswordReset returns the unused, unexpired reset, or
	// sqin.ErrNotFound.
	GetPasswordReset(ctx context.Context, id string, now time.Time) (*PasswordReset, error)
	// ResetPassword spends the reset, sets the account's password hash,
	// spends the account's other resets, lowers the account to level 1
	// (keeping its person, so that proofing that person again raises it)
	// and forgets its proofs, revokes every grant of the account (offline
	// ones too), ends its sessions (with their back-channel logouts) and
	// queues mails, in one transaction with the audit events ctx carries;
	// a reset already spent or expired is sqin.ErrNotFound.
	ResetPassword(ctx context.Context, id, passwordHash string, now time.Time, mails ...*Mail) error
	// AccountSessions returns the IDs of the account's sessions.
	AccountSessions(ctx context.Context, accountID string) ([]string, error)

	// QueueMail stores mails for the sender.
	QueueMail(ctx context.Context, mails ...*Mail) error
	// ClaimMails leases up to n mails due at now for lease; a mail leased
	// by one sender is not claimed by another until the lease ends.
	ClaimMails(ctx context.Context, now time.Time, lease time.Duration, n int) ([]*Mail, error)
	// MailSent marks a mail sent and forgets its body.
	MailSent(ctx context.Context, id string, now time.Time) error
	// MailFailed records a failed attempt; the mail is due again at next
	// (a zero next gives up on it and erases its body: codes and links
	// are not kept in clear for a mail that will never go).
	MailFailed(ctx context.Context, id string, next time.Time, reason string) error
	// PruneSignup deletes expired registrations and mails sent (or given
	// up) before the given time.
	PruneSignup(ctx context.Context, now, mailsBefore time.Time) error
}
