package cli

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/agentaudit/agentaudit"
	"github.com/agentaudit/agentaudit/datadir"
	"github.com/agentaudit/agentaudit/embedded"
	medicalrecords "github.com/agentaudit/agentaudit/examples/medical-records"
	"github.com/agentaudit/agentaudit/examples/scriptedmodel"
	supportagent "github.com/agentaudit/agentaudit/examples/support-agent"
	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/query"
)

// demoAPIKey is sent to the local scripted model; the recorder must never store it.
const demoAPIKey = "sk-ant-demo-0000-not-a-real-key"

// runDemo runs the two example agents against a local scripted model (no network, no key) into
// the data directory, prints each session's timeline, and verifies the whole log.
func runDemo(e *env) error {
	if pos, err := parse(e.flags("demo"), e.args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	vkey, err := e.dir.Init(e.ctx, "")
	switch {
	case err == nil:
		fmt.Fprintf(e.stdout, "initialized %s; verifier key:\n  %s\n\n", e.dir.Path, vkey)
	case errors.Is(err, datadir.ErrInitialized):
	default:
		return err
	}
	sessions, err := recordDemo(e)
	if err != nil {
		return err
	}
	st, err := e.dir.OpenStore(e.ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	for _, s := range sessions {
		recs, err := query.Session(e.ctx, st, s.id)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "== %s — session %s (agentaudit timeline %s)\n", s.title, s.id, s.id)
		if err := query.WriteTimeline(e.stdout, recs); err != nil {
			return err
		}
		fmt.Fprintln(e.stdout)
	}
	fmt.Fprintln(e.stdout, "Who accessed patient P-123: agentaudit report access --subject patient:P-123 --from 24h --to 2099-01-01 --format html > report.html")
	fmt.Fprintln(e.stdout, "\n$ agentaudit verify")
	return runVerify(&env{ctx: e.ctx, dir: e.dir, stdout: e.stdout, stderr: e.stderr})
}

type demoSession struct{ title, id string }

// recordDemo runs the example agents against a local scripted model into the data directory.
func recordDemo(e *env) ([]demoSession, error) {
	scripts := supportagent.Script()
	maps.Copy(scripts, medicalrecords.Script())
	model, err := scriptedmodel.Start(scripts)
	if err != nil {
		return nil, err
	}
	defer model.Close()
	r, err := e.dir.Redactor(e.policy)
	if err != nil {
		return nil, err
	}
	var sink agentaudit.Sink
	sink, err = embedded.Open(e.dir.Path, ledger.Options{Sanitizer: r})
	if errors.Is(err, datadir.ErrLocked) {
		sink, err = e.remote(err) // a running server holds the directory: record through it
	}
	if err != nil {
		return nil, err
	}
	rec, err := agentaudit.New(sink)
	if err != nil {
		sink.Close()
		return nil, err
	}
	sessions, err := runDemoAgents(e.ctx, rec, model.URL)
	if cerr := rec.Close(); err == nil {
		err = cerr
	}
	return sessions, err
}

func runDemoAgents(ctx context.Context, rec *agentaudit.Recorder, modelURL string) ([]demoSession, error) {
	support, err := supportagent.Run(ctx, rec, modelURL, demoAPIKey, supportagent.Request)
	if err != nil {
		return nil, fmt.Errorf("support agent: %w", err)
	}
	routine, err := medicalrecords.Run(ctx, rec, modelURL, demoAPIKey, medicalrecords.Clinician{UserID: "dr_smith", Role: "physician"}, medicalrecords.RoutineRequest)
	if err != nil {
		return nil, fmt.Errorf("medical records agent: %w", err)
	}
	emergency, err := medicalrecords.Run(ctx, rec, modelURL, demoAPIKey,
		medicalrecords.Clinician{UserID: "dr_jones", Role: "er_physician", BreakGlassReason: "unconscious patient in the ER, allergy check"}, medicalrecords.EmergencyRequest)
	if err != nil {
		return nil, fmt.Errorf("medical records agent: %w", err)
	}
	return []demoSession{
		{"customer support: cancel a shipped order", support.ID},
		{"medical records: routine allergy check", routine},
		{"medical records: emergency override (break-glass)", emergency},
	}, nil
}
