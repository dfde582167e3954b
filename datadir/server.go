package datadir

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ServerInfo is what a running server leaves in its data directory (DIR/server.json, mode 0600)
// so that commands which would write to the directory, and find it held, can go through the
// server's API instead.
type ServerInfo struct {
	URL string `json:"url"`
	PID int    `json:"pid"`
}

// ServerFile is where a running server announces itself.
func (d Dir) ServerFile() string { return filepath.Join(d.Path, "server.json") }

// WriteServer records the running server; RemoveServer, on shutdown, takes it back.
func (d Dir) WriteServer(info ServerInfo) error {
	b, err := json.Marshal(info)
	if err != nil {
		return err
	}
	tmp := d.ServerFile() + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, d.ServerFile())
}

// RemoveServer removes the server file.
func (d Dir) RemoveServer() error {
	if err := os.Remove(d.ServerFile()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// ErrNoServer: no server has announced itself in the directory.
var ErrNoServer = errors.New("no running server announced in the data directory")

// Server reads the running server's announcement.
func (d Dir) Server() (ServerInfo, error) {
	var info ServerInfo
	b, err := os.ReadFile(d.ServerFile())
	if errors.Is(err, os.ErrNotExist) {
		return info, ErrNoServer
	}
	if err != nil {
		return info, err
	}
	if err := json.Unmarshal(b, &info); err != nil || info.URL == "" {
		return info, fmt.Errorf("%s: malformed (%v)", d.ServerFile(), err)
	}
	return info, nil
}
