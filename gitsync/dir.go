package gitsync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing/fstest"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DirConfig tunes a Dir. The zero value works.
type DirConfig struct {
	// Debounce is how long the directory must be quiet after a change
	// before it is read. Zero: 200ms.
	Debounce time.Duration
	// Rescan is how often the directory is read even without events, to
	// catch changes the watcher missed (event queue overflow, network file
	// systems). Zero: 30s.
	Rescan time.Duration
	// Logf receives progress and error messages. Nil: discard.
	Logf func(format string, args ...any)
}

// Dir watches a local directory and emits a revision whenever the content
// of its files changes. Create it with NewDir.
//
// Files and directories whose names start with "." are left out of
// revisions (as schema.Load skips them) and not watched, but any event in
// the directory, hidden or not, schedules a re-read. Symlinks to files are
// followed, which makes Kubernetes ConfigMap mounts (files linked through
// an atomically swapped "..data" directory) work; symlinks to directories
// are not followed.
type Dir struct {
	feed
	dir string
	cfg DirConfig
}

var _ Source = (*Dir)(nil)

// NewDir starts watching dir; the first revision is its current content.
// The loop stops when ctx is done or Close is called.
func NewDir(ctx context.Context, dir string, cfg DirConfig) (*Dir, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("gitsync: config dir: %w", err)
	}
	if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("gitsync: config dir %s is not a directory (hint: check --config)", dir)
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = 200 * time.Millisecond
	}
	if cfg.Rescan <= 0 {
		cfg.Rescan = 30 * time.Second
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("gitsync: watch %s: %w", dir, err)
	}
	d := &Dir{feed: newFeed(Status{Source: abs}), dir: abs, cfg: cfg}
	if err := d.watchTree(w, abs); err != nil {
		w.Close()
		return nil, err
	}
	ctx, d.cancel = context.WithCancel(ctx)
	go d.run(ctx, w)
	return d, nil
}

// watchTree adds a watch for root and every non-hidden directory below it.
func (d *Dir) watchTree(w *fsnotify.Watcher, root string) error {
	return filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			if p != root && errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking
			}
			return fmt.Errorf("gitsync: watch %s: %w", p, err)
		}
		if !de.IsDir() {
			return nil
		}
		if p != d.dir && strings.HasPrefix(de.Name(), ".") {
			return filepath.SkipDir
		}
		if err := w.Add(p); err != nil {
			return fmt.Errorf("gitsync: watch %s: %w (hint: raise fs.inotify.max_user_watches)", p, err)
		}
		return nil
	})
}

// run is the single goroutine owning the watcher, the debounce timer and
// the pending revision.
func (d *Dir) run(ctx context.Context, w *fsnotify.Watcher) {
	defer close(d.done)
	defer close(d.out)
	defer w.Close()
	debounce := time.NewTimer(0)
	defer debounce.Stop()
	rescan := time.NewTicker(d.cfg.Rescan)
	defer rescan.Stop()
	var pending *Revision
	var last string
	for {
		var out chan<- Revision
		var next Revision
		if pending != nil {
			out, next = d.out, *pending
		}
		select {
		case <-ctx.Done():
			return
		case out <- next:
			pending = nil
			continue
		case ev := <-w.Events:
			if ev.Has(fsnotify.Create) {
				if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() && !strings.HasPrefix(fi.Name(), ".") {
					if err := d.watchTree(w, ev.Name); err != nil {
						d.cfg.Logf("%v", err)
					}
				}
			}
			debounce.Reset(d.cfg.Debounce)
			continue
		case err := <-w.Errors:
			d.cfg.Logf("gitsync: watch %s: %v; reading it again", d.dir, err)
			debounce.Reset(d.cfg.Debounce)
			continue
		case <-d.trigger:
		case <-rescan.C:
		case <-debounce.C:
		}
		rev, err := snapshotDir(ctx, d.dir)
		if ctx.Err() != nil {
			return
		}
		if err == nil && d.Status().Failures > 0 {
			// The directory may have been removed and recreated, which
			// drops its watches: watch it again.
			if werr := d.watchTree(w, d.dir); werr != nil {
				d.cfg.Logf("%v", werr)
			}
		}
		if err == nil && rev.ID != last {
			pending, last = rev, rev.ID
			d.cfg.Logf("gitsync: %s: new revision %s", d.dir, rev.ID)
		}
		d.record(rev, err)
	}
}

func (d *Dir) record(rev *Revision, err error) {
	now := time.Now()
	d.mu.Lock()
	st := &d.status
	st.LastAttempt, st.Err = now, err
	st.NextPoll = now.Add(d.cfg.Rescan)
	if err != nil {
		st.Failures++
	} else {
		st.LastSuccess, st.Failures, st.Head = now, 0, rev.ID
	}
	d.changedLocked()
	d.mu.Unlock()
	if err != nil {
		d.cfg.Logf("gitsync: %v", err)
	}
}

// snapshotDir reads every non-hidden regular file under dir into memory.
// The ID hashes the sorted names and contents, so equal content gives an
// equal ID whatever the modification times.
func snapshotDir(ctx context.Context, dir string) (*Revision, error) {
	files := fstest.MapFS{}
	var total int64
	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		if strings.HasPrefix(de.Name(), ".") {
			if de.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if de.IsDir() {
			return nil
		}
		fi, err := os.Stat(p) // follows symlinks
		if err != nil || !fi.Mode().IsRegular() {
			return nil // dangling link, link to a directory, socket...
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if total += int64(len(data)); total > maxTreeBytes {
			return errTreeTooLarge
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)] = &fstest.MapFile{Data: data, Mode: 0o444, ModTime: fi.ModTime()}
		return nil
	})
	if err != nil {
		return nil, &SyncError{Kind: ErrRetry, Err: fmt.Errorf("read config dir %s: %w", dir, err)}
	}
	return &Revision{ID: contentID(files), CommittedAt: time.Now(), FS: files}, nil
}

// contentID is "dir:sha256:<hex>" over the sorted file names and contents.
func contentID(files fstest.MapFS) string {
	h := sha256.New()
	for _, name := range slices.Sorted(maps.Keys(files)) {
		data := files[name].Data
		h.Write([]byte(name + "\x00" + strconv.Itoa(len(data)) + "\x00"))
		h.Write(data)
	}
	return "dir:sha256:" + hex.EncodeToString(h.Sum(nil))
}
