//go:build !unix

package signup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// lockExport takes the export lock of dir by creating dir/ExportLockFile
// exclusively, and removes it at unlock. Unlike flock on Unix, a crash
// leaves the file: remove it by hand once no export runs.
func lockExport(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, ExportLockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil, ErrExportRunning
	}
	if err != nil {
		return nil, fmt.Errorf("letters: lock: %w", err)
	}
	f.Close()
	return func() { os.Remove(path) }, nil
}
