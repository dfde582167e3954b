package alert

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/store"
)

// Alert is an alert event as committed: its seq, the event and its record.
type Alert struct {
	Seq    int64        `json:"seq"`
	Event  *event.Event `json:"event"`
	Record Record       `json:"-"`
}

// Attempt is one delivery attempt of an alert to a webhook, as the outbox records it.
type Attempt struct {
	Webhook   string    `json:"webhook"`
	AlertID   string    `json:"alert_id,omitempty"`
	Seq       int64     `json:"seq,omitempty"`
	N         int       `json:"attempt,omitempty"`
	At        time.Time `json:"at,omitzero"`
	Status    int       `json:"status,omitempty"`
	Error     string    `json:"error,omitempty"`
	Delivered bool      `json:"delivered,omitempty"`
	// FromSeq, on a webhook's first line: alerts from this seq on are its to deliver.
	FromSeq *int64 `json:"from_seq,omitempty"`
}

// Signature headers. The signature is hex HMAC-SHA256, keyed with the webhook's secret, of the
// timestamp (decimal Unix seconds), a dot, and the body: v1=HEX.
const (
	HeaderSignature   = "X-Agentaudit-Signature"
	HeaderTimestamp   = "X-Agentaudit-Timestamp"
	HeaderIdempotency = "Idempotency-Key"
	HeaderAttempt     = "X-Agentaudit-Attempt"
	maxResponseBytes  = 64 << 10
)

// Sign returns the X-Agentaudit-Signature value for body sent at timestamp ts.
func Sign(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1=" + hex.EncodeToString(m.Sum(nil))
}

// Errors of VerifySignature.
var (
	ErrBadSignature = errors.New("webhook signature does not match")
	ErrStale        = errors.New("webhook timestamp outside the tolerance")
)

// VerifySignature is the receiver's check: the signature header matches the body and timestamp
// (compared in constant time), and the timestamp is within tolerance of now, so a captured
// delivery cannot be replayed later.
func VerifySignature(secret []byte, sigHeader, ts string, body []byte, now time.Time, tolerance time.Duration) error {
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %q", ErrBadSignature, ts)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrStale
	}
	if !hmac.Equal([]byte(Sign(secret, ts, body)), []byte(sigHeader)) {
		return ErrBadSignature
	}
	return nil
}

// Payload is the JSON body of a delivery (format json).
type Payload struct {
	Webhook string       `json:"webhook"`
	Seq     int64        `json:"seq"`
	Alert   *event.Event `json:"alert"`
	Record  Record       `json:"record"`
}

// outbox delivers alerts to the webhooks and records every attempt in deliveries.jsonl. The
// alert events in the log are the source of truth; the file says which were delivered, so an
// alert committed but undelivered when the process stopped is found and delivered at start-up.
type outbox struct {
	e     *Engine
	path  string
	mu    sync.Mutex
	f     *os.File
	tried map[string][]Attempt // by alert id
	done  map[string]bool      // webhook \x00 alert id
	from  map[string]int64
	hooks []*deliverer
	wg    sync.WaitGroup
	stop  chan struct{}
}

type deliverer struct {
	o      *outbox
	w      *Webhook
	client *http.Client
	mu     sync.Mutex
	queue  []Alert
	wake   chan struct{}
}

func outboxPath(dir string) string { return filepath.Join(dir, "deliveries.jsonl") }

// readAttempts reads a deliveries file; a torn last line (a crash mid-write) is ignored.
func readAttempts(path string) ([]Attempt, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Attempt
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var a Attempt
		if json.Unmarshal(sc.Bytes(), &a) == nil {
			out = append(out, a)
		}
	}
	return out, sc.Err()
}

func openOutbox(ctx context.Context, e *Engine, st Store, size int64) (*outbox, error) {
	o := &outbox{e: e, path: outboxPath(e.opts.Dir), tried: map[string][]Attempt{}, done: map[string]bool{},
		from: map[string]int64{}, stop: make(chan struct{})}
	as, err := readAttempts(o.path)
	if err != nil {
		return nil, fmt.Errorf("alert: %w", err)
	}
	for _, a := range as {
		switch {
		case a.FromSeq != nil:
			o.from[a.Webhook] = *a.FromSeq
		case a.Delivered:
			o.done[a.Webhook+"\x00"+a.AlertID] = true
			fallthrough
		default:
			o.tried[a.AlertID] = append(o.tried[a.AlertID], a)
		}
	}
	if o.f, err = os.OpenFile(o.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err != nil {
		return nil, fmt.Errorf("alert: %w", err)
	}
	tr := e.opts.Transport
	if tr == nil {
		tr = http.DefaultTransport.(*http.Transport).Clone()
	}
	minFrom := size
	for _, w := range e.opts.Config.Webhooks {
		if _, ok := o.from[w.Name]; !ok {
			// A new webhook gets the alerts from now on, not the log's whole history.
			from := size
			o.from[w.Name] = from
			if err := o.write(Attempt{Webhook: w.Name, FromSeq: &from}, true); err != nil {
				return nil, err
			}
		}
		minFrom = min(minFrom, o.from[w.Name])
		o.hooks = append(o.hooks, &deliverer{o: o, w: w, wake: make(chan struct{}, 1), client: &http.Client{
			Transport: tr, Timeout: w.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}})
	}
	if len(o.hooks) == 0 {
		return o, nil
	}
	// The undelivered alerts already in the log.
	err = st.Find(ctx, store.Filter{Kind: string(event.KindAlert), FromSeq: minFrom}, func(en store.Entry) error {
		if len(en.Body) == 0 {
			return nil
		}
		ev, err := event.ParseStored(en.Body)
		if err != nil {
			return nil
		}
		var rec Record
		if json.Unmarshal(ev.Record, &rec) != nil {
			return nil
		}
		o.enqueue(Alert{Seq: en.Seq, Event: ev, Record: rec})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return o, nil
}

func (o *outbox) write(a Attempt, sync bool) error {
	b, _ := json.Marshal(a)
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, err := o.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("alert: deliveries: %w", err)
	}
	if sync {
		if err := o.f.Sync(); err != nil {
			return fmt.Errorf("alert: deliveries: %w", err)
		}
	}
	if a.FromSeq == nil {
		o.tried[a.AlertID] = append(o.tried[a.AlertID], a)
		if a.Delivered {
			o.done[a.Webhook+"\x00"+a.AlertID] = true
		}
	}
	return nil
}

func (o *outbox) enqueue(a Alert) {
	sev, _ := ParseSeverity(a.Record.Severity)
	for _, d := range o.hooks {
		o.mu.Lock()
		skip := o.done[d.w.Name+"\x00"+a.Event.ID] || a.Seq < o.from[d.w.Name] || sev < d.w.MinSeverity
		o.mu.Unlock()
		if skip {
			continue
		}
		d.mu.Lock()
		d.queue = append(d.queue, a)
		d.mu.Unlock()
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
}

func (o *outbox) attemptsOf(id string) []Attempt {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]Attempt(nil), o.tried[id]...)
}

func (o *outbox) start() {
	for _, d := range o.hooks {
		o.wg.Add(1)
		go func() { defer o.wg.Done(); d.run() }()
	}
}

func (o *outbox) close() error {
	select {
	case <-o.stop:
	default:
		close(o.stop)
	}
	o.wg.Wait()
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.f.Close()
}

// run delivers the webhook's queue in order, retrying each alert with exponential backoff and
// full jitter until the receiver answers 2xx. A dead receiver holds up only its own queue.
func (d *deliverer) run() {
	for {
		d.mu.Lock()
		var a Alert
		ok := len(d.queue) > 0
		if ok {
			a = d.queue[0]
		}
		d.mu.Unlock()
		if !ok {
			select {
			case <-d.wake:
				continue
			case <-d.o.stop:
				return
			}
		}
		n := 0 // this webhook's attempts of the alert so far, before a restart too
		for _, x := range d.o.attemptsOf(a.Event.ID) {
			if x.Webhook == d.w.Name {
				n++
			}
		}
		for {
			n++
			err := d.deliver(a, n)
			if err == nil {
				break
			}
			wait := d.o.e.opts.RetryBase << min(n-1, 30)
			if wait <= 0 || wait > d.o.e.opts.RetryMax {
				wait = d.o.e.opts.RetryMax
			}
			wait = time.Duration(rand.Int64N(int64(wait)) + 1) // full jitter
			select {
			case <-time.After(wait):
			case <-d.o.stop:
				return
			}
		}
		d.mu.Lock()
		d.queue = d.queue[1:]
		d.mu.Unlock()
	}
}

// deliver makes one attempt and records it; nil means the receiver took the alert.
func (d *deliverer) deliver(a Alert, n int) error {
	body, err := d.body(a)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.w.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.w.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "agentaudit-alerts/1")
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(d.w.secret, ts, body))
	req.Header.Set(HeaderIdempotency, a.Event.ID)
	req.Header.Set(HeaderAttempt, strconv.Itoa(n))
	at := Attempt{Webhook: d.w.Name, AlertID: a.Event.ID, Seq: a.Seq, N: n, At: time.Now().UTC()}
	resp, err := d.client.Do(req)
	if err == nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes))
		resp.Body.Close()
		at.Status = resp.StatusCode
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			err = fmt.Errorf("receiver answered %s", resp.Status)
		}
	}
	if err != nil {
		// The URL may carry a token in its query: name the webhook, not the URL.
		msg := err.Error()
		var ue *url.Error
		if errors.As(err, &ue) {
			msg = ue.Err.Error()
		}
		at.Error = msg
		d.o.e.attempts.WithLabelValues(d.w.Name, "failed").Inc()
		if werr := d.o.write(at, false); werr != nil {
			d.o.e.opts.Logger.Error("alert: recording a delivery attempt", "err", werr)
		}
		d.o.e.opts.Logger.Warn("alert delivery failed", "webhook", d.w.Name, "alert", a.Event.ID, "attempt", n, "err", msg)
		return err
	}
	at.Delivered = true
	d.o.e.attempts.WithLabelValues(d.w.Name, "delivered").Inc()
	if werr := d.o.write(at, true); werr != nil {
		d.o.e.opts.Logger.Error("alert: recording a delivery", "err", werr)
	}
	return nil
}

func (d *deliverer) body(a Alert) ([]byte, error) {
	if d.w.Format == "slack" {
		return json.Marshal(map[string]string{"text": fmt.Sprintf("[%s] %s (agentaudit alert %s, seq %d)",
			strings.ToUpper(a.Record.Severity), a.Record.Message, a.Event.ID, a.Seq)})
	}
	return json.Marshal(Payload{Webhook: d.w.Name, Seq: a.Seq, Alert: a.Event, Record: a.Record})
}
