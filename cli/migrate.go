package cli

import (
	"fmt"

	"github.com/agentaudit/agentaudit/datadir"
)

func runMigrate(e *env) error {
	fs := e.flags("migrate")
	from := fs.String("from", e.dir.Path, "the data directory whose ledger.db to copy (default: --data)")
	to := fs.String("to", "", "the empty PostgreSQL database to copy it into, postgres://...")
	batch := fs.Int("batch", datadir.DefaultMigrateBatch, "entries copied per transaction")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if pos, err := parse(fs, e.args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if *to == "" {
		return usagef("--to postgres://... is required")
	}
	if *batch <= 0 {
		return usagef("--batch %d: want a positive number of entries", *batch)
	}
	last := -1
	rep, err := datadir.Dir{Path: *from}.Migrate(e.ctx, *to, datadir.MigrateOptions{Batch: *batch, Progress: func(copied, total int64) {
		if pct := int(100 * copied / total); pct/10 != last/10 { // a line every 10%
			last = pct
			fmt.Fprintf(e.stderr, "copied %d of %d events (%d%%)\n", copied, total, pct)
		}
	}})
	if err != nil {
		return err
	}
	if *asJSON {
		return e.writeJSON(rep)
	}
	fmt.Fprintf(e.stdout, "copied %d events (%d purged), %d tree hashes and %d checkpoints from %s to %s in %v\n",
		rep.Events, rep.Purged, rep.TreeHashes, rep.Checkpoints, datadir.Dir{Path: *from}.DB(), rep.Target, rep.Copy.Round(1e6))
	fmt.Fprintf(e.stdout, "checked in %v: every entry and tree hash identical, the same %d checkpoint notes and signatures, the same root at %d sizes; verify of the copy: OK\n",
		rep.Check.Round(1e6), rep.Checkpoints, rep.Roots)
	fmt.Fprintf(e.stdout, "to use it: agentaudit --data %s --store URL serve (or set AGENTAUDIT_STORE); %s is left as it was\n", *from, datadir.Dir{Path: *from}.DB())
	return nil
}
