// Package proxyhttp holds what the HTTP doors (llmproxy with the SDK's LLM transport, mcpproxy's
// Streamable HTTP proxy) share around net/http/httputil.ReverseProxy: the connection pool to
// their one upstream, the buffers that copy answers, and the body that records its answer after
// handing it on.
package proxyhttp

import (
	"bytes"
	"io"
	"net/http"
	"sync"
)

// MaxIdleConns is how many idle connections a proxy keeps to its upstream. http.DefaultTransport
// keeps 2 per host, so with more than 2 calls in flight every further call dials (and, to a real
// API, shakes hands over TLS) anew; a proxy has one upstream, so its pool is all for that host.
const MaxIdleConns = 100

// Transport returns a transport for a proxy's upstream: http.DefaultTransport's settings
// (proxy from the environment, timeouts, HTTP/2) with MaxIdleConns idle connections to the host.
func Transport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns, t.MaxIdleConnsPerHost = MaxIdleConns, MaxIdleConns
	return t
}

// BufferPool lends ReverseProxy its copy buffers. Without one it allocates 32 KiB per answer,
// half of all the LLM proxy allocated per call, and the garbage collections that follow land in
// the calls' tail latency.
var BufferPool = &pool{p: sync.Pool{New: func() any { return new([bufSize]byte) }}}

const bufSize = 32 << 10 // what ReverseProxy allocates itself

type pool struct{ p sync.Pool }

func (p *pool) Get() []byte { return p.p.Get().(*[bufSize]byte)[:] }

func (p *pool) Put(b []byte) {
	if cap(b) == bufSize {
		p.p.Put((*[bufSize]byte)(b[:bufSize]))
	}
}

// AfterRead returns body as a response body that calls done once, when the reader reaches its
// end or closes it, whichever comes first: a door hands an answer on, then records it. A reader
// that does neither (net/http requires the Close) never calls done.
func AfterRead(body []byte, done func()) io.ReadCloser {
	return &afterRead{Reader: bytes.NewReader(body), done: done}
}

type afterRead struct {
	*bytes.Reader
	once sync.Once
	done func()
}

func (b *afterRead) Read(p []byte) (int, error) {
	n, err := b.Reader.Read(p)
	if err == io.EOF {
		b.once.Do(b.done)
	}
	return n, err
}

func (b *afterRead) Close() error {
	b.once.Do(b.done)
	return nil
}
