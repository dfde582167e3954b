//go:build !linux

package sqlite

import "os"

func fdatasync(f *os.File) error { return f.Sync() }

// tryLock is not available here: a second writer on one file is not detected.
func tryLock(f *os.File) (bool, error) { return true, nil }

// syncDir is not done here: not every system can sync a directory.
func syncDir(dir string) error { return nil }
