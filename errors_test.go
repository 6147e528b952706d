package sqin

import (
	"errors"
	"fmt"
	"testing"
)

func TestErrorCodeWalksTheChain(t *testing.T) {
	tests := []struct {
		err     error
		code    string
		message string
	}{
		{nil, "", "internal error"},
		{errors.New("plain"), EInternal, "internal error"},
		{ErrNotFound, ENotFound, "not found"},
		{&Error{Op: "store.Get", Err: ErrNotFound}, ENotFound, "not found"},
		{fmt.Errorf("wrapped: %w", &Error{Op: "x", Err: ErrConflict}), EConflict, "already exists"},
		{&Error{Code: EInvalid, Message: "bad", Err: ErrNotFound}, EInvalid, "bad"},
	}
	for _, tt := range tests {
		if got := ErrorCode(tt.err); got != tt.code {
			t.Errorf("ErrorCode(%v) = %q, want %q", tt.err, got, tt.code)
		}
		if got := ErrorMessage(tt.err); got != tt.message {
			t.Errorf("ErrorMessage(%v) = %q, want %q", tt.err, got, tt.message)
		}
	}
	for _, s := range []string{"urn:sqin:loa:1", "urn:sqin:loa:3"} {
		if l, ok := ParseACR(s); !ok || l.ACR() != s {
			t.Errorf("ParseACR(%q)", s)
		}
	}
	for _, s := range []string{"urn:sqin:loa:0", "urn:sqin:loa:4", "urn:sqin:loa:12", "loa:2", ""} {
		if _, ok := ParseACR(s); ok {
			t.Errorf("ParseACR(%q) accepted", s)
		}
	}
}
