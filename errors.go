package sqin

import (
	"errors"
	"fmt"
)

// Error codes. Each maps to one HTTP status and, on protocol endpoints, to
// one OAuth error code, in internal/web.
const (
	ENotFound     = "not_found"
	EConflict     = "conflict"
	EInvalid      = "invalid"
	EUnauthorized = "unauthorized"
	EForbidden    = "forbidden"
	ETooMany      = "too_many_requests"
	EInternal     = "internal"
)

// Error is SQIN's error: a code for programs, a message safe to show, the
// operation that failed and the wrapped cause for the log.
type Error struct {
	Code    string
	Message string
	Op      string
	Err     error
}

func (e *Error) Error() string {
	s := e.Op
	if e.Code != "" {
		s += ": " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an Error with a code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first Error in err's chain, EInternal
// for any other error and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	for e := range errorChain(err) {
		if e.Code != "" {
			return e.Code
		}
	}
	return EInternal
}

// errorChain yields every *Error in err's chain, outermost first.
func errorChain(err error) func(func(*Error) bool) {
	return func(yield func(*Error) bool) {
		for err != nil {
			var e *Error
			if !errors.As(err, &e) || !yield(e) {
				return
			}
			err = e.Err
		}
	}
}

// ErrorMessage returns the safe message of the first Error in err's chain.
func ErrorMessage(err error) string {
	for e := range errorChain(err) {
		if e.Message != "" {
			return e.Message
		}
	}
	return "internal error"
}

// Sentinel errors the stores return.
var (
	ErrNotFound = &Error{Code: ENotFound, Message: "not found"}
	ErrConflict = &Error{Code: EConflict, Message: "already exists"}
	// ErrReplay is returned when a single-use artefact (code, refresh
	// token) is presented a second time; the store has already revoked
	// what it issued.
	ErrReplay = &Error{Code: EInvalid, Message: "already used"}
	// ErrRevoked is returned for an artefact whose grant was revoked.
	ErrRevoked = &Error{Code: EInvalid, Message: "revoked"}
)

// ErrExpired is returned for an artefact past its lifetime.
var ErrExpired = &Error{Code: EInvalid, Message: "expired"}
