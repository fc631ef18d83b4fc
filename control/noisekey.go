package control

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"tailscale.com/types/key"
)

// noiseKeyFile is the file in the state directory holding the server's
// Noise (machine) private key.
const noiseKeyFile = "noise.key"

// LoadOrCreateNoiseKey reads the server's Noise private key from stateDir,
// creating and saving a new one on first start. Clients pin this key, so it
// must survive restarts.
func LoadOrCreateNoiseKey(stateDir string) (key.MachinePrivate, error) {
	path := filepath.Join(stateDir, noiseKeyFile)
	b, err := os.ReadFile(path)
	if err == nil {
		var k key.MachinePrivate
		if err := k.UnmarshalText([]byte(strings.TrimSpace(string(b)))); err != nil {
			return key.MachinePrivate{}, fmt.Errorf("control: %s is not a machine private key: %w; delete it to make a new one (clients will re-fetch the key)", path, err)
		}
		return k, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return key.MachinePrivate{}, fmt.Errorf("control: reading noise key: %w", err)
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return key.MachinePrivate{}, fmt.Errorf("control: creating state directory: %w", err)
	}
	k := key.NewMachine()
	text, err := k.MarshalText()
	if err != nil {
		return key.MachinePrivate{}, err
	}
	if err := WriteStateFile(path, append(text, '\n')); err != nil {
		return key.MachinePrivate{}, fmt.Errorf("control: writing noise key: %w", err)
	}
	return k, nil
}

// WriteStateFile replaces path, a file of the state directory holding a
// key or certificate, with data, mode 0600: through a new temporary file
// in the same directory (created exclusively, so never one left behind
// with a looser mode, or a link) and a rename, so that a reader sees the
// old file or the new one.
func WriteStateFile(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
