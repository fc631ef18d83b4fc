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
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(text, '\n'), 0o600); err != nil {
		return key.MachinePrivate{}, fmt.Errorf("control: writing noise key: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return key.MachinePrivate{}, fmt.Errorf("control: writing noise key: %w", err)
	}
	return k, nil
}
