// Package tesserabench measures agentaudit's durable append against transparency-dev/tessera's
// POSIX log on the same machine, in the same run, with the same entries (issue 17).
//
// It is a module of its own so that tessera and its dependencies never reach agentaudit's
// go.mod; a replace directive points it at the agentaudit checkout around it (../..), so it
// always measures the code in that checkout. The main module's `go test ./...` does not enter
// it.
//
// Run from this directory:
//
//	go test -run '^$' -bench . -benchtime 5s
//
// To repeat, run that command several times (a shell loop), not with -count: -count repeats
// each sub-benchmark back to back (Tessera three times, then agentaudit three times), so the
// two sides would no longer run right after each other, and the printed ratio would use only the
// last Tessera run.
//
// BenchmarkVsTessera runs, for each shape, Tessera first and agentaudit right after it, and
// reports both rates (events/s) and agentaudit's as a multiple of Tessera's (x-tessera), then
// prints one line per shape with the two rates and the ratio agentaudit/Tessera. The workload on
// both sides:
//
//   - 64 writer goroutines (exactly 64, whatever GOMAXPROCS is) share the b.N calls.
//   - A call appends 1 event ("one-per-call") or 100 events ("100-per-call") and returns when
//     all of them are durable. For Tessera, 100 per call is 100 Add calls issued by one writer
//     before it awaits the 100 futures.
//   - Each event is internal/benchevent.KiB(i), the event ledger's own benchmarks append; Tessera
//     gets its canonical bytes (about 1 KiB) as the entry data, so both sides are handed the same
//     bytes and the caller-side work of building and encoding the event is the same.
//   - Both logs live in a fresh directory under the Go temp dir ($TMPDIR, else /tmp), so on the
//     same filesystem; setup and teardown are not timed.
//
// What "durable" means on each side, which is what is timed:
//
//   - Tessera (posix.New, tessera.NewAppender with its defaults: batches of up to 256 entries or
//     250 ms, a checkpoint every 10 s, no antispam): an Add's future has resolved, which in the
//     POSIX driver means its batch was sequenced and integrated: the entry bundle, the tiles and
//     the tree state were written with O_SYNC and their directories fsynced. The signed checkpoint
//     covering it is published later, on the checkpoint interval; that is not waited for.
//   - agentaudit (store/sqlite and ledger with their defaults, sanitization off as in the ledger
//     benchmarks): Append or AppendBatch has returned, which means the events, their Merkle
//     hashes and their query index rows were committed in one SQLite transaction with
//     synchronous=FULL (fsync). The signed checkpoint follows on the ledger's checkpoint interval
//     (1 s); that is not waited for either.
//
// With Tessera's default batching, one event per call from 64 writers cannot fill a 256-entry
// batch, so each batch waits for the 250 ms timer: Tessera's one-per-call rate is bounded near
// 64 / 0.25 s = 256 events/s. That is what its defaults give and the figure the ratio uses; the
// extra sub-benchmark tessera-batch64 (batches of 64, the number of writers) shows what Tessera
// does when its batching is tuned to this workload.
//
// The ceilings benchmarks (ceilings_test.go) measure what the machine allows: one fsync of
// 64 KiB, sequential writes with fdatasync, SHA-256 of 1 KiB on one core and on all.
package tesserabench
