//go:build unix

package signup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockExport takes the export lock of dir: an exclusive flock(2) on
// dir/ExportLockFile, held until unlock (or until the process dies: the
// kernel releases it, so a crash leaves no stale lock). A second export
// into the same directory gets ErrExportRunning at once.
func lockExport(dir string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, ExportLockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("letters: lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrExportRunning
		}
		return nil, fmt.Errorf("letters: lock %s: %w", f.Name(), err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
