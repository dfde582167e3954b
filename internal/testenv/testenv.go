// Package testenv decides what a test does when something outside the program is missing (a
// tmpfs mount, npx, a browser): skip with a one-line reason on a developer's machine, fail when
// AGENTAUDIT_STRICT=1, which CI sets after installing everything, so CI never passes by skipping.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// Strict reports whether missing prerequisites fail tests instead of skipping them.
func Strict() bool { return os.Getenv("AGENTAUDIT_STRICT") == "1" }

// Missing skips t, or fails it in strict mode, because what it needs is not available.
func Missing(t testing.TB, reason string) {
	t.Helper()
	if Strict() {
		t.Fatalf("AGENTAUDIT_STRICT=1 and %s", reason)
	}
	t.Skip(reason)
}

// MountTmpfs mounts a tmpfs of size bytes on a new temporary directory and unmounts it at the end
// of the test. It needs root (or CAP_SYS_ADMIN).
func MountTmpfs(t testing.TB, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		Missing(t, "cannot mount a tmpfs (needs root): "+string(out))
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// RemountReadOnly makes a tmpfs from MountTmpfs read-only.
func RemountReadOnly(t testing.TB, dir string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,ro", dir).CombinedOutput(); err != nil {
		t.Fatalf("remount read-only: %v: %s", err, out)
	}
}

// ResizeTmpfs changes the size of a tmpfs from MountTmpfs, to make room on a full one.
func ResizeTmpfs(t testing.TB, dir, size string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,size="+size, dir).CombinedOutput(); err != nil {
		t.Fatalf("resize tmpfs: %v: %s", err, out)
	}
}
