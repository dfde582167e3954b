package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"text/tabwriter"
	"time"

	"github.com/agentaudit/agentaudit/alert"
	"github.com/agentaudit/agentaudit/apikey"
	"github.com/agentaudit/agentaudit/datadir"
	"github.com/agentaudit/agentaudit/internal/gcfloor"
	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/retention"
	"github.com/agentaudit/agentaudit/server"
)

// DefaultListen is loopback: exposing the API is a decision, not a default.
const DefaultListen = "127.0.0.1:8433"

// ServeHeapFloor is the heap serve lets grow between garbage collections while its live heap is
// small (internal/gcfloor): under ingest load GOGC's default collected over ten times a second.
// A GOGC set in the environment is left alone.
const ServeHeapFloor = 64 << 20

// DefaultStoreWait is how long serve waits for its database at start: long enough for the
// database and the servers to start together (a host reboot, a compose file).
const DefaultStoreWait = time.Minute

func runServe(e *env) error {
	fs := e.flags("serve")
	listen := fs.String("listen", DefaultListen, "address to listen on")
	certFile := fs.String("tls-cert", "", "TLS certificate (PEM); with --tls-key, serve HTTPS")
	keyFile := fs.String("tls-key", "", "TLS private key (PEM)")
	alertsFile := fs.String("alerts", "", "alert rules file (default: the --policy file's alerts section, else the built-in rules)")
	demo := fs.Bool("demo", false, "first record the example agents' sessions (offline), to have data to query")
	purgeEvery := fs.Duration("purge-every", 24*time.Hour, "run the retention purge at start and then this often; 0 turns it off")
	storeWait := fs.Duration("store-wait", DefaultStoreWait, "with --store: how long to keep retrying, with backoff, a database that is unreachable at start")
	if pos, err := parse(fs, e.args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if (*certFile == "") != (*keyFile == "") {
		return usagef("--tls-cert and --tls-key go together")
	}
	if *storeWait <= 0 {
		return usagef("--store-wait %s: want a positive duration", *storeWait)
	}
	logger := slog.New(slog.NewJSONHandler(e.stderr, nil))
	e.dir.StoreWait, e.dir.StoreLog = *storeWait, logger
	if _, set := os.LookupEnv("GOGC"); !set {
		defer gcfloor.Start(ServeHeapFloor).Stop()
	}
	if *purgeEvery < 0 {
		return usagef("--purge-every %s: want a positive interval, or 0 for no scheduled purge", *purgeEvery)
	}
	policy, err := e.retentionPolicy() // refused here, before anything starts, when it is broken
	if err != nil {
		return err
	}
	// First start: initialize the directory and make an admin key.
	if _, err := e.dir.Init(e.ctx, ""); err == nil {
		fmt.Fprintf(e.stderr, "initialized %s; verifier key in %s\n", e.dir.Path, e.dir.VerifierKey())
	} else if !errors.Is(err, datadir.ErrInitialized) {
		return err
	}
	keys, err := apikey.Open(e.dir.APIKeys())
	if err != nil {
		return err
	}
	if len(keys.List()) == 0 {
		secret, _, err := keys.Create("admin", apikey.Admin)
		if err != nil {
			return err
		}
		if err := os.WriteFile(e.dir.AdminKey(), []byte(secret+"\n"), 0o600); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "admin API key written to %s (mode 0600)\n", e.dir.AdminKey())
	}
	v, err := e.dir.Verifier()
	if err != nil {
		return err
	}
	if *demo {
		// The demo is news to the alert engine, which has not started yet: its break-glass access
		// raises its alert at the start, as it would had the server been running.
		if err := e.markAlertHistory(); err != nil {
			return err
		}
		sessions, err := recordDemo(e)
		if err != nil {
			return err
		}
		for _, s := range sessions {
			fmt.Fprintf(e.stderr, "demo: recorded %s (session %s)\n", s.title, s.id)
		}
	}
	metrics := server.NewMetrics()
	rules, err := e.loadAlerts(*alertsFile)
	if err != nil {
		return err
	}
	alerts, err := alert.New(alert.Options{Config: rules, Dir: e.alertsDir(), Logger: logger})
	if err != nil {
		return err
	}
	redactor, err := e.dir.Redactor(e.policy)
	if err != nil {
		return err
	}
	w, err := e.openWriter(ledger.Options{OnCommit: metrics.ObserveCommit, Committed: alerts.Committed, Retention: policy, Sanitizer: redactor})
	if err != nil {
		return err
	}
	if warns, err := w.StoreWarnings(e.ctx); err != nil {
		logger.Warn("store privileges unknown", "err", err)
	} else {
		for _, msg := range warns {
			logger.Warn("store: " + msg)
		}
	}
	governance := &retention.Manager{Store: w.Store, Ledger: w.Ledger, Policy: policy, Sanitize: redactor}
	if err := alerts.Start(e.ctx, w.Ledger, w.Store); err != nil {
		w.Close()
		return err
	}
	metrics.Register(alerts.Collectors()...)
	srv, err := server.New(server.Config{Ledger: w.Ledger, Store: w.Store, Keys: keys, Verifier: v, Metrics: metrics, Logger: logger,
		AlertsDir: e.alertsDir(), ApprovalsDir: e.approvalsDir(""), Retention: governance})
	if err != nil {
		alerts.Close()
		w.Close()
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		alerts.Close()
		w.Close()
		return err
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 2 * time.Minute,
		WriteTimeout: 5 * time.Minute, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	scheme := "http"
	if *certFile != "" {
		scheme = "https"
		hs.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	fmt.Fprintf(e.stderr, "listening on %s://%s\n", scheme, ln.Addr())
	// Commands that would write to the directory while it is held here go through the API.
	if err := e.dir.WriteServer(datadir.ServerInfo{URL: scheme + "://" + ln.Addr().String(), PID: os.Getpid()}); err != nil {
		ln.Close()
		w.Close()
		return err
	}
	defer e.dir.RemoveServer()
	if *purgeEvery > 0 {
		purgeCtx, stopPurge := context.WithCancel(e.ctx)
		defer stopPurge()
		go governance.Schedule(purgeCtx, *purgeEvery, func(res *retention.Result, err error) {
			switch {
			case err != nil && purgeCtx.Err() == nil:
				logger.Error("scheduled purge failed; retried at the next run", "err", err)
			case err == nil && res.Erased > 0:
				logger.Info("scheduled purge", "erased", res.Erased, "held", res.Held, "purge_events", res.PurgeEvents, "bytes_freed", res.Bytes)
			}
		})
	}
	go func() {
		if err := srv.WarmSessions(e.ctx); err != nil && e.ctx.Err() == nil {
			logger.Warn("console session index not built; the first sessions page builds it", "err", err)
		}
	}()
	errc := make(chan error, 1)
	go func() {
		if *certFile != "" {
			errc <- hs.ServeTLS(ln, *certFile, *keyFile)
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	select {
	case err = <-errc:
	case <-e.ctx.Done():
		// SIGTERM: stop accepting, let requests in flight finish, then drain and checkpoint.
		fmt.Fprintln(e.stderr, "shutting down")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = hs.Shutdown(ctx)
		cancel()
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	// The engine first: it evaluates what is queued, and its alerts still reach the ledger.
	return errors.Join(err, alerts.Close(), w.Close())
}

func runKeys(e *env) error {
	if len(e.args) == 0 {
		return usagef("want create, list or revoke")
	}
	keys, err := apikey.Open(e.dir.APIKeys())
	if err != nil {
		return err
	}
	switch sub, args := e.args[0], e.args[1:]; sub {
	case "create":
		fs := e.flags("keys")
		role := fs.String("role", "", "writer, reader, auditor or admin (required)")
		name := fs.String("name", "", "who the key is for (required)")
		if pos, err := parse(fs, args); err != nil {
			return err
		} else if len(pos) > 0 {
			return usagef("unexpected argument %q", pos[0])
		}
		if *role == "" || *name == "" {
			return usagef("--role and --name are required")
		}
		if _, err := os.Stat(e.dir.Path); err != nil {
			return datadir.ErrNotInitialized
		}
		secret, k, err := keys.Create(*name, apikey.Role(*role))
		if errors.Is(err, apikey.ErrBadRole) {
			return usagef("%v", err)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "created key %s (%s, role %s); it is shown once:\n", k.ID, k.Name, k.Role)
		fmt.Fprintln(e.stdout, secret) // alone on the last line, for scripts
		return nil
	case "list":
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tROLE\tCREATED\tREVOKED")
		for _, k := range keys.List() {
			revoked := "-"
			if !k.RevokedAt.IsZero() {
				revoked = k.RevokedAt.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Role, k.CreatedAt.Format(time.RFC3339), revoked)
		}
		return tw.Flush()
	case "revoke":
		if len(args) != 1 {
			return usagef("want the id or name of one key")
		}
		k, err := keys.Revoke(args[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "revoked %s (%s)\n", k.ID, k.Name)
		return nil
	}
	return usagef("unknown keys command %q (want create, list or revoke)", e.args[0])
}

// markAlertHistory tells a never-started alert engine that only what the log holds now is history.
func (e *env) markAlertHistory() error {
	st, err := e.dir.OpenStore(e.ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	size, err := st.Size(e.ctx)
	if err != nil {
		return err
	}
	return alert.MarkHistory(e.alertsDir(), size)
}
