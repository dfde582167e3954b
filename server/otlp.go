package server

import (
	"context"
	"fmt"
	"mime"
	"net/http"
	"strings"

	collectorpb "go.opentelemetry.io/proto/slim/otlp/collector/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/agentaudit/agentaudit/apikey"
	"github.com/agentaudit/agentaudit/ingest"
	"github.com/agentaudit/agentaudit/otlp"
)

// traces is the OTLP/HTTP receiver: spans become events on the same path as POST /v1/events.
func (s *Server) traces(w http.ResponseWriter, r *http.Request, k apikey.Key) error {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct != "application/x-protobuf" && ct != "application/json" {
		return &Problem{Status: http.StatusUnsupportedMediaType, Title: "Unsupported content type", Detail: fmt.Sprintf("Content-Type %q (want application/x-protobuf or application/json)", ct)}
	}
	data, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	var req *collectorpb.ExportTraceServiceRequest
	if ct == "application/json" {
		req, err = otlp.DecodeJSON(data)
	} else {
		req, err = otlp.DecodeProtobuf(data)
	}
	if err != nil {
		return &Problem{Status: http.StatusBadRequest, Title: "Malformed OTLP", Detail: err.Error()}
	}
	if n := otlp.SpanCount(req); n > s.cfg.MaxBatch { // before Convert reads the store
		return &Problem{Status: http.StatusRequestEntityTooLarge, Title: "Batch too large", Detail: fmt.Sprintf("%d spans; the limit is %d", n, s.cfg.MaxBatch)}
	}
	// Spans inherit the agent of an agent span recorded from an earlier export. If the log cannot
	// be read, 503 makes the exporter retry rather than record them under the wrong agent.
	spans, err := otlp.Convert(r.Context(), req, otlp.Options{Lookup: otlp.FromStore(s.cfg.Store)})
	if err != nil {
		s.cfg.Logger.Error("OTLP: ancestors not read", "err", err)
		return &Problem{Status: http.StatusServiceUnavailable, Title: "Storage unavailable", Detail: "the log cannot be read now", retry: 5}
	}
	items := make([]ingest.Item, len(spans))
	for i, sp := range spans {
		items[i] = ingest.Item{Event: sp.Event, Err: sp.Err}
	}
	res, err := ingest.Append(context.WithoutCancel(r.Context()), s.cfg.Ledger.TryAppendBatch, items)
	if err != nil {
		return err
	}
	s.countIngested("otlp", res)
	var reasons []string
	for i, x := range res {
		switch {
		case x.Err == nil:
		case spans[i].Event != nil:
			reasons = append(reasons, fmt.Sprintf("span %s: %v", spans[i].Event.ID, x.Err))
		default:
			reasons = append(reasons, x.Err.Error())
		}
	}
	msg := ""
	if len(reasons) > 0 {
		msg = strings.Join(reasons[:min(len(reasons), 5)], "; ")
	}
	resp := otlp.Response(len(reasons), msg)
	var out []byte
	if ct == "application/json" {
		out, err = protojson.Marshal(resp)
	} else {
		out, err = proto.Marshal(resp)
	}
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", ct)
	_, err = w.Write(out)
	return err
}
