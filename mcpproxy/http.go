package mcpproxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"

	"github.com/agentaudit/agentaudit/internal/proxyhttp"
)

// HTTPProxy is the MCP audit proxy for the Streamable HTTP transport (MCP 2025-06-18): a reverse
// proxy in front of one MCP endpoint. Each MCP session (Mcp-Session-Id) is recorded as one
// agentaudit session, as over stdio: what a client POSTs is read as the client's messages, and
// the answer, JSON or an SSE stream, as the server's. Bodies pass through unchanged; SSE streams
// are flushed event by event. The approval gate holds calls as over stdio: a POSTed tools/call to a
// held tool waits in its request until the decision; approved, it goes upstream, otherwise the
// client gets the JSON-RPC answer (a tool error saying why) as application/json from the proxy.
type HTTPProxy struct {
	cfg      Config
	rp       *httputil.ReverseProxy
	mu       sync.Mutex
	sessions map[string]*Proxy
}

// SessionHeader is the Streamable HTTP session header.
const SessionHeader = "Mcp-Session-Id"

// NewHTTP returns a proxy for the MCP endpoint upstream (e.g. http://127.0.0.1:3001/mcp).
func NewHTTP(cfg Config, upstream string) (*HTTPProxy, error) {
	if _, err := New(cfg); err != nil {
		return nil, err
	}
	if cfg.MaxMessageBytes == 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	up, err := url.Parse(upstream)
	if err != nil || (up.Scheme != "http" && up.Scheme != "https") || up.Host == "" {
		return nil, fmt.Errorf("mcpproxy: upstream %q is not an http(s) URL", upstream)
	}
	h := &HTTPProxy{cfg: cfg, sessions: map[string]*Proxy{}}
	h.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = up
			pr.Out.Host = up.Host
			pr.Out.Header.Del("X-Forwarded-For")
		},
		FlushInterval: -1,
		Transport:     proxyhttp.Transport(),
		BufferPool:    proxyhttp.BufferPool,
		ModifyResponse: func(resp *http.Response) error {
			p, _ := resp.Request.Context().Value(proxyKey{}).(*Proxy)
			if p == nil {
				return nil
			}
			if id := resp.Header.Get(SessionHeader); id != "" {
				h.mu.Lock()
				if h.sessions[id] == nil {
					h.sessions[id] = p
				}
				h.mu.Unlock()
			}
			ct := resp.Header.Get("Content-Type")
			switch {
			case strings.HasPrefix(ct, "text/event-stream"):
				resp.Body = &sseObserver{rc: resp.Body, p: p, br: bufio.NewReaderSize(resp.Body, 64<<10)}
			case strings.HasPrefix(ct, "application/json"):
				body, err := io.ReadAll(io.LimitReader(resp.Body, int64(cfg.MaxMessageBytes)+1))
				resp.Body.Close()
				if err != nil {
					return err
				}
				observe := func() {
					if len(body) <= cfg.MaxMessageBytes {
						p.observeLine(fromServer, body)
					}
				}
				if p.recordAfter() {
					p.handOn()
					resp.Body = proxyhttp.AfterRead(body, func() { observe(); p.recordedHandedOn() })
					return nil
				}
				observe()
				resp.Body = io.NopCloser(bytes.NewReader(body))
			}
			return nil
		},
	}
	return h, nil
}

type proxyKey struct{}

func contextWithProxy(r *http.Request, p *Proxy) context.Context {
	return context.WithValue(r.Context(), proxyKey{}, p)
}

// session returns the recording state of the request's MCP session.
func (h *HTTPProxy) session(r *http.Request) *Proxy {
	id := r.Header.Get(SessionHeader)
	h.mu.Lock()
	defer h.mu.Unlock()
	if p := h.sessions[id]; p != nil && id != "" {
		return p
	}
	p, _ := New(h.cfg)
	if id != "" {
		h.sessions[id] = p
	}
	return p
}

// ServeHTTP implements http.Handler.
func (h *HTTPProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := h.session(r)
	switch r.Method {
	case http.MethodPost:
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(h.cfg.MaxMessageBytes)))
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			p.recordError(fromClient, "oversized_message", fmt.Sprintf("a message from the client of more than %d bytes was refused", h.cfg.MaxMessageBytes))
			http.Error(w, "message too large", http.StatusRequestEntityTooLarge)
			return
		}
		if err != nil {
			http.Error(w, "unreadable body", http.StatusBadRequest)
			return
		}
		if m, name, args, held := p.heldCall(body); held {
			p.observe(fromClient, m)
			if answer := p.approve(r.Context(), m, name, args); answer != nil {
				w.Header().Set("Content-Type", "application/json")
				w.Write(answer)
				return
			}
		} else if answer, refused := p.refuseHeldBatch(body); refused {
			if len(answer) == 0 {
				w.WriteHeader(http.StatusAccepted) // notifications only: nothing to answer
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Write(answer)
			return
		} else {
			p.observeLine(fromClient, body)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
	case http.MethodDelete:
		defer func() {
			id := r.Header.Get(SessionHeader)
			h.mu.Lock()
			delete(h.sessions, id)
			h.mu.Unlock()
			p.finish(r.Context(), "the client ended the session before the answer")
		}()
	}
	h.rp.ServeHTTP(w, r.WithContext(contextWithProxy(r, p)))
}

// Close records session_end for the sessions still open.
func (h *HTTPProxy) Close() {
	h.mu.Lock()
	ss := h.sessions
	h.sessions = map[string]*Proxy{}
	h.mu.Unlock()
	for _, p := range ss {
		p.finish(p.ctx, "the proxy stopped before the answer")
	}
}

// observeLine records one message (or batch) without forwarding it: the HTTP proxy forwards.
func (p *Proxy) observeLine(from side, line []byte) {
	p.inspect(from, line)
}

// sseObserver passes an SSE stream through unchanged and records each event's data as a message
// from the server: at once when the proxy records before it forwards, otherwise (recordAfter) at
// the next Read or Close, once the event has been handed on.
type sseObserver struct {
	rc      io.ReadCloser
	br      *bufio.Reader
	p       *Proxy
	data    bytes.Buffer
	out     []byte
	pending [][]byte // events handed on, to record
}

func (s *sseObserver) observePending() {
	for _, m := range s.pending {
		s.p.observeLine(fromServer, m)
		s.p.recordedHandedOn()
	}
	s.pending = s.pending[:0]
}

// Read hands on whole lines, recording each event as its blank line passes; it takes as many
// lines as are already buffered (never waiting for more), so that an event goes out in one write
// and one flush rather than one per line.
func (s *sseObserver) Read(b []byte) (int, error) {
	s.observePending()
	n := 0
	for n < len(b) {
		if len(s.out) == 0 {
			if n > 0 && !s.lineBuffered() {
				break
			}
			line, err := s.br.ReadSlice('\n')
			if errors.Is(err, bufio.ErrBufferFull) {
				err = nil // a long line passes in pieces; its data is not parsed
				s.data.Reset()
			}
			s.out = line
			s.feed(line)
			if len(line) == 0 {
				if n > 0 {
					break // the error comes again with the next Read
				}
				return 0, err
			}
		}
		c := copy(b[n:], s.out)
		s.out = s.out[c:]
		n += c
	}
	return n, nil
}

// lineBuffered reports whether a whole line is already read from upstream.
func (s *sseObserver) lineBuffered() bool {
	buf, _ := s.br.Peek(s.br.Buffered())
	return bytes.IndexByte(buf, '\n') >= 0
}

func (s *sseObserver) feed(line []byte) {
	l := bytes.TrimRight(line, "\r\n")
	switch {
	case len(l) == 0:
		if s.data.Len() > 0 {
			if s.p.recordAfter() {
				s.p.handOn()
				s.pending = append(s.pending, bytes.Clone(s.data.Bytes()))
			} else {
				s.p.observeLine(fromServer, s.data.Bytes())
			}
			s.data.Reset()
		}
	case bytes.HasPrefix(l, []byte("data:")):
		if s.data.Len()+len(l) > s.p.cfg.MaxMessageBytes {
			return
		}
		if s.data.Len() > 0 {
			s.data.WriteByte('\n')
		}
		s.data.Write(bytes.TrimPrefix(bytes.TrimPrefix(l, []byte("data:")), []byte(" ")))
	}
}

func (s *sseObserver) Close() error {
	s.observePending()
	return s.rc.Close()
}
