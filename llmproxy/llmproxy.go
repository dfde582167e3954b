// Package llmproxy owns the LLM audit proxy: a reverse proxy in front of the Anthropic Messages
// API or the OpenAI Chat Completions and Responses APIs, so that an agent in any language records
// its model calls by changing only its base URL (ANTHROPIC_BASE_URL, OPENAI_BASE_URL).
//
// It records through the SDK's Transport (agentaudit.Transport): one parser, one reassembly of
// SSE streams, for the Go SDK and the proxy alike. Streams reach the agent unbuffered (each chunk
// is flushed as it arrives). Attribution comes from optional request headers (X-Agentaudit-Session,
// -User, -Agent, -Trigger), removed before the request goes upstream; API keys pass through to
// the upstream and are never recorded.
package llmproxy

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"

	"github.com/agentaudit/agentaudit"
	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/internal/proxyhttp"
)

// DefaultMaxBodyBytes bounds a request body.
const DefaultMaxBodyBytes = agentaudit.MaxLLMBodyBytes

// Attribution headers: read by the proxy, never sent upstream.
const (
	HeaderSession = "X-Agentaudit-Session"
	HeaderUser    = "X-Agentaudit-User"
	HeaderAgent   = "X-Agentaudit-Agent"
	HeaderTrigger = "X-Agentaudit-Trigger"
)

// Config wires a proxy.
type Config struct {
	Recorder *agentaudit.Recorder
	// Upstream is the API's base URL, e.g. https://api.anthropic.com.
	Upstream string
	// UserID and AgentID attribute calls that carry no headers.
	UserID, AgentID string
	// MaxBodyBytes bounds request bodies (DefaultMaxBodyBytes when 0).
	MaxBodyBytes int64
	// Base sends the requests upstream; when nil, a transport of the proxy's own with
	// proxyhttp.MaxIdleConns (100) idle connections to the upstream, where http.DefaultTransport
	// would keep 2 and dial again for every call beyond 2 in flight.
	Base http.RoundTripper
}

// Proxy is the handler.
type Proxy struct {
	cfg   Config
	rp    *httputil.ReverseProxy
	mu    sync.Mutex
	sess  map[string]*agentaudit.Session // started sessions by id
	order []string
}

// maxSessions bounds the sessions the proxy remembers; the oldest is forgotten first (a later
// call with its id records a new session_start).
const maxSessions = 10000

// New returns the proxy for cfg.
func New(cfg Config) (*Proxy, error) {
	if cfg.Recorder == nil {
		return nil, errors.New("llmproxy: a Recorder is required")
	}
	up, err := url.Parse(cfg.Upstream)
	if err != nil || (up.Scheme != "http" && up.Scheme != "https") || up.Host == "" {
		return nil, fmt.Errorf("llmproxy: upstream %q is not an http(s) URL", cfg.Upstream)
	}
	if cfg.MaxBodyBytes < 0 {
		return nil, fmt.Errorf("llmproxy: MaxBodyBytes is %d; want a positive size, or 0 for the default", cfg.MaxBodyBytes)
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Base == nil {
		cfg.Base = proxyhttp.Transport()
	}
	p := &Proxy{cfg: cfg, sess: map[string]*agentaudit.Session{}}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(up)
			pr.Out.Host = up.Host
			for h := range pr.Out.Header {
				if strings.HasPrefix(strings.ToLower(h), "x-agentaudit-") {
					pr.Out.Header.Del(h)
				}
			}
			// The proxy's address is nobody's business upstream.
			pr.Out.Header.Del("X-Forwarded-For")
		},
		Transport:     &agentaudit.Transport{Recorder: cfg.Recorder, Base: cfg.Base},
		FlushInterval: -1, // streams: flush every write, no buffering delay
		BufferPool:    proxyhttp.BufferPool,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			// The failure is recorded by the transport; the agent gets a gateway error that
			// names no upstream detail beyond the message.
			http.Error(w, "agentaudit llm-proxy: upstream unreachable", http.StatusBadGateway)
		},
	}
	return p, nil
}

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, p.cfg.MaxBodyBytes)
	if id := r.Header.Get(HeaderSession); id != "" {
		s, err := p.session(r, id)
		if err != nil {
			http.Error(w, "agentaudit llm-proxy: "+err.Error(), http.StatusBadRequest)
			return
		}
		r = r.WithContext(agentaudit.ContextWithSession(r.Context(), s))
	}
	p.rp.ServeHTTP(w, r)
}

// session returns the session id, starting it (session_start) on its first call.
func (p *Proxy) session(r *http.Request, id string) (*agentaudit.Session, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s := p.sess[id]; s != nil {
		return s, nil
	}
	info := agentaudit.SessionInfo{ID: id, UserID: p.cfg.UserID, AgentID: p.cfg.AgentID, UserAgent: r.UserAgent(),
		Trigger: event.Trigger(r.Header.Get(HeaderTrigger)), Metadata: []byte(`{"door":"llm-proxy"}`)}
	if u := r.Header.Get(HeaderUser); u != "" {
		info.UserID = u
	}
	if a := r.Header.Get(HeaderAgent); a != "" {
		info.AgentID = a
	}
	_, s, err := p.cfg.Recorder.StartSession(r.Context(), info)
	if err != nil {
		return nil, err
	}
	if len(p.order) >= maxSessions {
		delete(p.sess, p.order[0])
		p.order = p.order[1:]
	}
	p.sess[id] = s
	p.order = append(p.order, id)
	return s, nil
}
