package agentaudit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/agentaudit/agentaudit/event"
)

// Remote is a Sink that sends events to an agentaudit server (POST /v1/events as JSON Lines),
// for agents that record to a server instead of a data directory of their own. The recorder
// batches for it. Each event carries its id, so a retried batch stores nothing twice.
type Remote struct {
	endpoint string
	key      string
	client   *http.Client
}

// Limits of a Remote.
const (
	// RemoteAttempts is how many times a batch is sent while the server answers 429/503 or the
	// connection fails.
	RemoteAttempts = 5
	// RemoteMaxWait caps the wait between attempts, whatever Retry-After says.
	RemoteMaxWait = 10 * time.Second
)

// ErrRemote: the server did not store the batch (an HTTP error, or an answer that is not the
// API's). The error carries the status and the server's problem title and detail.
var ErrRemote = errors.New("agentaudit server refused the batch")

// Dial returns a Remote for the server at baseURL (http or https, e.g. http://127.0.0.1:8433)
// that authenticates with apiKey (a writer or admin key). It sends nothing yet.
func Dial(baseURL, apiKey string) (*Remote, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("agentaudit: Dial: %q is not an http(s) URL", baseURL)
	}
	if strings.TrimSpace(apiKey) == "" {
		return nil, errors.New("agentaudit: Dial: an API key is required")
	}
	return &Remote{endpoint: strings.TrimRight(baseURL, "/") + "/v1/events", key: strings.TrimSpace(apiKey),
		client: &http.Client{Timeout: 30 * time.Second}}, nil
}

// Result is the server's answer for one event: its position in the log, or why it was refused.
type Result struct {
	ID        string
	Seq       int64
	Duplicate bool // stored before, with identical content
	Err       error
}

// AppendBatch implements Sink.
func (r *Remote) AppendBatch(ctx context.Context, evs []*event.Event) ([]error, error) {
	res, err := r.Send(ctx, evs)
	if err != nil {
		return nil, err
	}
	errs := make([]error, len(res))
	for i := range res {
		errs[i] = res[i].Err
	}
	return errs, nil
}

// Send posts evs as one batch and returns one result per event; the error is set when nothing
// was stored.
func (r *Remote) Send(ctx context.Context, evs []*event.Event) ([]Result, error) {
	var body bytes.Buffer
	for _, ev := range evs {
		b, err := ev.Canonical()
		if err != nil {
			return nil, err
		}
		body.Write(b)
		body.WriteByte('\n')
	}
	var lastErr error
	for attempt := 0; attempt < RemoteAttempts; attempt++ {
		res, wait, err := r.post(ctx, body.Bytes(), len(evs))
		if wait == 0 {
			return res, err
		}
		lastErr = err
		if attempt == RemoteAttempts-1 {
			break
		}
		select {
		case <-time.After(min(wait<<attempt, RemoteMaxWait)):
		case <-ctx.Done():
			return nil, errors.Join(ctx.Err(), lastErr)
		}
	}
	return nil, fmt.Errorf("after %d attempts: %w", RemoteAttempts, lastErr)
}

// post sends one attempt; wait > 0 means it may be retried after about that long.
func (r *Remote) post(ctx context.Context, body []byte, n int) ([]Result, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Authorization", "Bearer "+r.key)
	resp, err := r.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		return nil, 200 * time.Millisecond, fmt.Errorf("%w: %w", ErrRemote, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, 200 * time.Millisecond, fmt.Errorf("%w: reading the answer: %w", ErrRemote, err)
	}
	var answer struct {
		Title, Detail string
		Results       []struct {
			Index     int
			ID        string
			Seq       *int64
			Duplicate bool
			Field     string
			Error     string
		}
	}
	jsonErr := json.Unmarshal(data, &answer)
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
		wait := time.Second
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			wait = time.Duration(s) * time.Second
		}
		return nil, wait, fmt.Errorf("%w: %s: %s %s", ErrRemote, resp.Status, answer.Title, answer.Detail)
	case resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusMultiStatus && resp.StatusCode != http.StatusUnprocessableEntity,
		jsonErr != nil:
		return nil, 0, fmt.Errorf("%w: %s: %s %s", ErrRemote, resp.Status, answer.Title, answer.Detail)
	case len(answer.Results) != n:
		return nil, 0, fmt.Errorf("%w: %s: %d results for %d events", ErrRemote, resp.Status, len(answer.Results), n)
	}
	out := make([]Result, n)
	for i, x := range answer.Results {
		if x.Index != i {
			return nil, 0, fmt.Errorf("%w: result %d answers event %d", ErrRemote, i, x.Index)
		}
		out[i] = Result{ID: x.ID, Duplicate: x.Duplicate}
		switch {
		case x.Error != "":
			out[i].Err = &RemoteEventError{Field: x.Field, Message: x.Error}
		case x.Seq == nil:
			return nil, 0, fmt.Errorf("%w: event %d neither stored nor refused", ErrRemote, i)
		default:
			out[i].Seq = *x.Seq
		}
	}
	return out, 0, nil
}

// RemoteEventError is the server's refusal of one event, naming the field where it can. It
// wraps event.ErrInvalid: the server refuses events for what they are, not for its own state.
type RemoteEventError struct {
	Field, Message string
}

func (e *RemoteEventError) Error() string { return e.Message }
func (e *RemoteEventError) Unwrap() error { return event.ErrInvalid }

// Close releases idle connections.
func (r *Remote) Close() error {
	r.client.CloseIdleConnections()
	return nil
}
