package audit_test

import (
	"testing"

	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/audit/audittest"
)

func TestTamperMemory(t *testing.T) {
	audittest.RunTamper(t, 280, 1, func(t *testing.T) (audit.Storage, audittest.Tamperer) {
		st := audittest.NewMemStore()
		return st, st
	})
}
