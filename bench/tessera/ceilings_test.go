//go:build linux

package tesserabench

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// The ceilings: what this machine's disk and cores allow, measured next to the harness so a
// ratio can be read against them (issue 17). Files go under the Go temp dir, as the logs do.

// wrapAt bounds the benchmark files: past it the file is truncated (untimed) and written afresh,
// so a long run does not fill the disk.
const wrapAt = 256 << 20

// BenchmarkFsync64KiB: one 64 KiB write followed by one fsync, appending to a file (new blocks,
// so the fsync also commits the file's size and extents, as a growing log's does) or
// overwriting the same 64 KiB (fdatasync, data only, as a reused WAL's frames are).
func BenchmarkFsync64KiB(b *testing.B) {
	buf := make([]byte, 64<<10)
	b.Run("append-fsync", func(b *testing.B) {
		f := benchFile(b)
		var off int64
		for i := 0; i < b.N; i++ {
			if off >= wrapAt {
				off = restart(b, f)
			}
			if _, err := f.WriteAt(buf, off); err != nil {
				b.Fatal(err)
			}
			off += int64(len(buf))
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("overwrite-fdatasync", func(b *testing.B) {
		f := benchFile(b)
		if _, err := f.WriteAt(buf, 0); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			buf[i%len(buf)]++ // the page must really be dirty
			if _, err := f.WriteAt(buf, 0); err != nil {
				b.Fatal(err)
			}
			if err := syscall.Fdatasync(int(f.Fd())); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSeqWriteFdatasync: sequential appends of one chunk followed by fdatasync, as a
// group-committing log writes; MB/s is the disk's durable write bandwidth, and kib-events/s
// the same figure in 1 KiB events.
func BenchmarkSeqWriteFdatasync(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"64KiB", 64 << 10}, {"1MiB", 1 << 20}} {
		b.Run(size.name, func(b *testing.B) {
			buf := make([]byte, size.n)
			f := benchFile(b)
			b.SetBytes(int64(size.n))
			var off int64
			for i := 0; i < b.N; i++ {
				if off >= wrapAt {
					off = restart(b, f)
				}
				if _, err := f.WriteAt(buf, off); err != nil {
					b.Fatal(err)
				}
				off += int64(len(buf))
				if err := syscall.Fdatasync(int(f.Fd())); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)*float64(size.n)/1024/b.Elapsed().Seconds(), "kib-events/s")
		})
	}
}

// BenchmarkSHA256KiB: SHA-256 of 1 KiB (a leaf hash's input is the salted canonical event, about
// that size) on one core, and on all cores at once.
func BenchmarkSHA256KiB(b *testing.B) {
	buf := make([]byte, 1024)
	b.Run("one-core", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			sha256.Sum256(buf)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "hashes/s")
	})
	b.Run("all-cores", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				sha256.Sum256(buf)
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "hashes/s")
	})
}

// benchFile creates an empty file under b's temp dir, closed when b ends.
func benchFile(b *testing.B) *os.File {
	b.Helper()
	f, err := os.Create(filepath.Join(b.TempDir(), "ceiling.dat"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	return f
}

// restart truncates f to empty, durably and untimed, and returns the offset to write at next.
func restart(b *testing.B, f *os.File) int64 {
	b.StopTimer()
	defer b.StartTimer()
	if err := f.Truncate(0); err != nil {
		b.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	return 0
}
