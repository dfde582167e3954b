// Command burnserver is the floor of issue 17's single-post figure: an HTTP server on loopback
// that reads each request, spends a fixed CPU time (hashing in a loop) and answers as `serve`
// does, with nothing written. Driven by the load command beside it on the same two cores, it
// shows the p99 a server of that CPU cost per request can reach on this machine, whatever it
// stores. Usage: burnserver -burn 170us (it prints "listening on URL" on stderr).
package main

import (
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	burn := flag.Duration("burn", 0, "CPU time to spend per request")
	flag.Parse()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "listening on http://%s\n", ln.Addr())
	answer := []byte(`{"results":[{"seq":1,"id":"x","leaf":"` + fmt.Sprintf("%064x", 0) + `"}]}`)
	http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		var b [1024]byte
		for start := time.Now(); time.Since(start) < *burn; {
			h := sha256.Sum256(b[:])
			b[0] = h[0]
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(answer)
	}))
}
