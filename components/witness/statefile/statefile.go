// Package statefile stores the witness's durable state (run id, epochs,
// votes, known peers and replicas) as JSON, atomically and durably: write a
// temporary file in the same directory, fsync it, rename it over the old one,
// fsync the directory. A crash at any point leaves either the old or the new
// state, never a torn one, and once Save returns the state survives power loss.
package statefile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/redisha/redisha/components/witness/core"
)

// Load reads the state at path. A missing file is not an error: it returns
// nil, meaning a first start.
func Load(path string) (*core.State, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state file: %w", err)
	}
	var st core.State
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("state file %s is corrupt (%v); refusing to start, because forgetting a vote could let this witness vote twice in one epoch; restore it or remove it deliberately", path, err)
	}
	if st.MyID != "" && !core.ValidRunID(st.MyID) {
		return nil, fmt.Errorf("state file %s: run id %q is not 40 hex characters", path, st.MyID)
	}
	return &st, nil
}

// Save writes st to path atomically and durably.
func Save(path string, st core.State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	b = append(b, '\n')
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("state file: write: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("state file: fsync: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("state file: rename: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("state file: fsync dir: %w", err)
	}
	return nil
}
