package gitsync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/storage"
)

// maxObjectBytes bounds one Git object held in memory, inflated: a file of
// the config tree, and any object a fetch keeps. Tailnet configs are
// kilobytes.
const maxObjectBytes = 16 << 20

// objectStore is the syncer's object store: go-git's in-memory or
// filesystem storage, into which a fetch's pack is read by ingest rather
// than by go-git's parser, which inflates every object whole into memory,
// several times over (a 256 MiB blob of zeros, 256 KiB on the wire, costs
// gigabytes).
//
// ingest reads the pack as a stream and keeps the objects up to
// maxObjectBytes. A larger one is inflated through a hash only, never into
// memory, and remembered by hash and size (large), so a config file too
// large is refused by name without being read, while a large file
// elsewhere in the repository costs nothing. A delta whose base was not
// kept cannot be resolved and is skipped. When the pack delivers the
// commit the fetch asked for, onCommit may refuse it, which ends the fetch
// before the trees and blobs that follow the commits in a pack arrive.
//
// Only the syncer's goroutine uses an objectStore; a fetch's ingest runs
// on a goroutine of its own while that goroutine waits in the fetch.
type objectStore struct {
	storage.Storer

	large map[plumbing.Hash]int64 // objects over maxObjectBytes: inflated size

	// The current fetch, set by expect.
	ctx      context.Context
	want     plumbing.Hash
	onCommit func(*object.Commit) error
}

func newObjectStore(s storage.Storer) *objectStore {
	return &objectStore{Storer: s, large: map[plumbing.Hash]int64{}, ctx: context.Background()}
}

// expect sets up the next fetch: ingest stops when ctx is done, and calls
// onCommit (if not nil) with the commit want when the pack delivers it.
func (s *objectStore) expect(ctx context.Context, want plumbing.Hash, onCommit func(*object.Commit) error) {
	s.ctx, s.want, s.onCommit = ctx, want, onCommit
}

// tooLarge returns an errTooLarge error naming what if the object h was
// not kept for its size, nil otherwise.
func (s *objectStore) tooLarge(h plumbing.Hash, what string) error {
	if n, ok := s.large[h]; ok {
		return sizeError(fmt.Sprintf("%s is %s, over the %d MiB limit for one Git object", what, mib(n), maxObjectBytes>>20))
	}
	return nil
}

// Init implements storer.Initializer, so git.Init prepares a filesystem
// store.
func (s *objectStore) Init() error {
	if i, ok := s.Storer.(storer.Initializer); ok {
		return i.Init()
	}
	return nil
}

// EncodedObjectSize reports the size of a large object, which is not kept,
// besides those of the objects kept.
func (s *objectStore) EncodedObjectSize(h plumbing.Hash) (int64, error) {
	if n, ok := s.large[h]; ok {
		return n, nil
	}
	return s.Storer.EncodedObjectSize(h)
}

// PackfileWriter implements storer.PackfileWriter: go-git writes a
// fetch's pack into it, and ingest reads it from the other end of a pipe.
// Once ingest fails, writes fail with its error, ending the fetch.
func (s *objectStore) PackfileWriter() (io.WriteCloser, error) {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := s.ingest(pr)
		if err == nil {
			_, err = io.Copy(io.Discard, pr) // nothing should follow the checksum
		}
		pr.CloseWithError(err)
		done <- err
	}()
	return &packWriter{pw: pw, done: done}, nil
}

type packWriter struct {
	pw   *io.PipeWriter
	done chan error
}

func (w *packWriter) Write(p []byte) (int, error) { return w.pw.Write(p) }

func (w *packWriter) Close() error {
	w.pw.Close()
	return <-w.done
}

// ingest reads a pack from r into the store.
func (s *objectStore) ingest(r io.Reader) error {
	sc := packfile.NewScanner(r)
	_, count, err := sc.Header()
	if err != nil {
		return fmt.Errorf("read pack: %w", err)
	}
	byOffset := map[int64]plumbing.Hash{} // zero: not kept, or not resolved
	for range count {
		oh, err := sc.NextObjectHeader()
		if err != nil {
			return fmt.Errorf("read pack: %w", err)
		}
		var h plumbing.Hash
		switch oh.Type {
		case plumbing.CommitObject, plumbing.TreeObject, plumbing.BlobObject, plumbing.TagObject:
			h, err = s.ingestWhole(sc, oh)
		case plumbing.OFSDeltaObject:
			h, err = s.ingestDelta(sc, oh, byOffset[oh.OffsetReference])
		case plumbing.REFDeltaObject:
			h, err = s.ingestDelta(sc, oh, oh.Reference)
		default:
			err = fmt.Errorf("%w: object type %v at offset %d", packfile.ErrMalformedPackFile, oh.Type, oh.Offset)
		}
		if err != nil {
			return err
		}
		byOffset[oh.Offset] = h
		if h == s.want && s.onCommit != nil {
			if err := s.checkCommit(h); err != nil {
				return err
			}
		}
	}
	if _, err := sc.Checksum(); err != nil {
		return fmt.Errorf("read pack: %w", err)
	}
	return nil
}

// checkCommit runs onCommit for the commit h, just stored.
func (s *objectStore) checkCommit(h plumbing.Hash) error {
	c, err := object.GetCommit(s.Storer, h)
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return nil // not a commit, or too large: revision() says why
	}
	if err != nil {
		return err
	}
	return s.onCommit(c)
}

// ingestWhole reads an undeltified object: kept if small enough, hashed
// only otherwise.
func (s *objectStore) ingestWhole(sc *packfile.Scanner, oh *packfile.ObjectHeader) (plumbing.Hash, error) {
	if oh.Length > maxObjectBytes {
		hasher := plumbing.NewHasher(oh.Type, oh.Length)
		if err := s.inflate(sc, oh, hasher); err != nil {
			return plumbing.ZeroHash, err
		}
		h := hasher.Sum()
		s.large[h] = oh.Length
		return h, nil
	}
	o := s.NewEncodedObject()
	o.SetType(oh.Type)
	o.SetSize(oh.Length)
	w, err := o.Writer()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if err := s.inflate(sc, oh, w); err != nil {
		return plumbing.ZeroHash, err
	}
	if err := w.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	return s.SetEncodedObject(o)
}

// inflate writes the next object's content to w, checking its size.
func (s *objectStore) inflate(sc *packfile.Scanner, oh *packfile.ObjectHeader, w io.Writer) error {
	n, _, err := sc.NextObject(ctxWriter{s.ctx, w})
	if err == nil && n != oh.Length {
		err = fmt.Errorf("%w: object at offset %d holds %d bytes, not %d", packfile.ErrMalformedPackFile, oh.Offset, n, oh.Length)
	}
	if err != nil {
		return fmt.Errorf("read pack: %w", err)
	}
	return nil
}

// ingestDelta reads a delta against base and stores the object it makes,
// or only hashes it if that is large. It returns the zero hash for a delta
// that cannot be resolved because its base was not kept (too large, or
// missing from a thin pack) or the delta itself is too large to hold.
func (s *objectStore) ingestDelta(sc *packfile.Scanner, oh *packfile.ObjectHeader, base plumbing.Hash) (plumbing.Hash, error) {
	if oh.Length > maxObjectBytes {
		return plumbing.ZeroHash, s.inflate(sc, oh, io.Discard)
	}
	var delta bytes.Buffer
	if err := s.inflate(sc, oh, &delta); err != nil {
		return plumbing.ZeroHash, err
	}
	if base.IsZero() {
		return plumbing.ZeroHash, nil
	}
	b, err := s.Storer.EncodedObject(plumbing.AnyObject, base)
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return plumbing.ZeroHash, nil
	}
	if err != nil {
		return plumbing.ZeroHash, err
	}
	size, err := deltaTargetSize(delta.Bytes())
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("read pack: delta at offset %d: %w", oh.Offset, err)
	}
	if size > maxObjectBytes {
		rc, err := packfile.ReaderFromDelta(b, bytes.NewReader(delta.Bytes()))
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("read pack: delta at offset %d: %w", oh.Offset, err)
		}
		defer rc.Close()
		hasher := plumbing.NewHasher(b.Type(), size)
		n, err := io.Copy(ctxWriter{s.ctx, hasher}, rc)
		if err == nil && n != size {
			err = fmt.Errorf("%w: makes %d bytes, not %d", packfile.ErrInvalidDelta, n, size)
		}
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("read pack: delta at offset %d: %w", oh.Offset, err)
		}
		h := hasher.Sum()
		s.large[h] = size
		return h, nil
	}
	o := s.NewEncodedObject()
	o.SetType(b.Type())
	if err := packfile.ApplyDelta(o, b, delta.Bytes()); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("read pack: delta at offset %d: %w", oh.Offset, err)
	}
	return s.SetEncodedObject(o)
}

// deltaTargetSize reads the size of the object a delta makes from its
// header: two little-endian base-128 numbers, the base's size and the
// target's.
func deltaTargetSize(delta []byte) (int64, error) {
	var sizes [2]uint64
	for i := range sizes {
		var shift uint
		for {
			if len(delta) == 0 {
				return 0, packfile.ErrInvalidDelta
			}
			c := delta[0]
			delta = delta[1:]
			if shift > 56 {
				return 0, packfile.ErrInvalidDelta
			}
			sizes[i] |= uint64(c&0x7f) << shift
			shift += 7
			if c&0x80 == 0 {
				break
			}
		}
	}
	if sizes[1] > 1<<62 {
		return 0, packfile.ErrInvalidDelta
	}
	return int64(sizes[1]), nil
}

// ctxWriter fails once ctx is done, so inflating a large object stops
// with the check.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}
