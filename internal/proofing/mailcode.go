package proofing

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

// Codes by mail: a one-time code printed in a letter sent to the address
// the registry holds for a person. The citizen types it, so it avoids the
// characters that read alike (0/O, 1/I/L) and is shown in groups of four.

// mailCodeAlphabet has 31 symbols: no I, L, O, 0 or 1.
const mailCodeAlphabet = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"

// MailCodeLen is the number of symbols of a code (12 x log2(31): about 59
// bits). Guessing is bounded by attempt
// limits, and a stolen database does not give the codes away: only their
// keyed hash is stored.
const MailCodeLen = 12

// NewMailCode returns a random code, normalised (no separators).
func NewMailCode() string {
	b := make([]byte, MailCodeLen)
	for i := range b {
		b[i] = mailCodeAlphabet[randIndex(len(mailCodeAlphabet))]
	}
	return string(b)
}

// randIndex returns a uniform index below n (n <= 256) by rejection.
func randIndex(n int) int {
	limit := 256 - 256%n
	var b [1]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic("proofing: no randomness: " + err.Error())
		}
		if int(b[0]) < limit {
			return int(b[0]) % n
		}
	}
}

// FormatMailCode groups a normalised code by four: ABCD-EFGH-JKMN.
func FormatMailCode(code string) string {
	var b strings.Builder
	for i, r := range code {
		if i > 0 && i%4 == 0 {
			b.WriteByte('-')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// NormalizeMailCode turns what a citizen typed into a code: upper case,
// spaces and dashes dropped. ok is false when the result does not have the
// code's length and alphabet.
func NormalizeMailCode(s string) (code string, ok bool) {
	var b strings.Builder
	for _, r := range strings.ToUpper(s) {
		if r == ' ' || r == '-' || r == '\u00a0' || r == '\t' {
			continue
		}
		b.WriteRune(r)
	}
	code = b.String()
	if len(code) != MailCodeLen {
		return code, false
	}
	for _, r := range code {
		if !strings.ContainsRune(mailCodeAlphabet, r) {
			return code, false
		}
	}
	return code, true
}

// MailCodeHash is the stored form of a letter's code: HMAC-SHA256 under
// key (derived from the master key) over the letter's identifier and the
// normalised code.
func MailCodeHash(key []byte, letterID, code string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("sqin-mail-code/v1\x00" + letterID + "\x00" + code))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
