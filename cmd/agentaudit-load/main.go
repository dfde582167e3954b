// Command agentaudit-load drives a running agentaudit server and prints throughput and latency.
//
//	agentaudit-load --url http://127.0.0.1:8433 --key-file DIR/admin.key --connections 32 --batch 100 --duration 20s
//	agentaudit-load --url http://127.0.0.1:8433 --key-file DIR/admin.key --connections 64 --batch 1 --rate 5000 --duration 20s
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/agentaudit/agentaudit/loadgen"
)

func main() {
	var cfg loadgen.Config
	flag.StringVar(&cfg.URL, "url", "http://127.0.0.1:8433", "server URL, or several comma-separated (instances on one database), sharing the connections (loopback only in this repository's tests)")
	keyFile := flag.String("key-file", "", "file holding a writer or admin API key")
	flag.IntVar(&cfg.Connections, "connections", 32, "concurrent connections")
	flag.IntVar(&cfg.Batch, "batch", 100, "events per request")
	flag.IntVar(&cfg.Rate, "rate", 0, "requests per second in total (0: as fast as possible)")
	flag.DurationVar(&cfg.Duration, "duration", 20*time.Second, "how long to run")
	flag.Parse()
	key, err := os.ReadFile(*keyFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "agentaudit-load:", err)
		os.Exit(2)
	}
	cfg.Key = strings.TrimSpace(string(key))
	res, err := loadgen.Run(context.Background(), cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "agentaudit-load:", err)
		os.Exit(1)
	}
	fmt.Println(res)
}
