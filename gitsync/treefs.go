package gitsync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/storage/memory"
)

// maxTreeBytes bounds the blob bytes a revision may hold in memory. Tailnet
// configs are kilobytes; a tree this large is almost certainly the wrong
// --path.
const maxTreeBytes = 64 << 20

// errTooLarge marks a config over a size limit: a file or Git object over
// maxObjectBytes, or a tree over maxTreeBytes in all.
var errTooLarge = errors.New("config over a size limit")

// sizeError is an errTooLarge error.
type sizeError string

func (e sizeError) Error() string        { return string(e) }
func (e sizeError) Is(target error) bool { return target == errTooLarge }

var errTreeTooLarge error = sizeError(fmt.Sprintf("the config tree holds more than %d MiB of files (hint: check --path)", maxTreeBytes>>20))

// mib formats a size in MiB.
func mib(n int64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// snapshotTree copies the tree root (the directory dir of the repository,
// "." for its root) and every tree and blob below it from src into a new
// in-memory store and returns an fs.FS over it. Submodules are not
// followed (their commits live in another repository). Sizes are checked
// before an object is read: a file or tree over maxObjectBytes, or files
// over maxTreeBytes in all, are an errTooLarge error naming the file.
func snapshotTree(ctx context.Context, src storer.EncodedObjectStorer, root plumbing.Hash, dir string, mtime time.Time) (*treeFS, error) {
	dst := memory.NewStorage()
	var total int64
	var walk func(h plumbing.Hash, p string) error
	walk = func(h plumbing.Hash, p string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := checkSize(src, h, "directory", p); err != nil {
			return err
		}
		if err := copyObject(src, dst, plumbing.TreeObject, h); err != nil {
			return fmt.Errorf("tree %s: %w", p, err)
		}
		t, err := object.GetTree(dst, h)
		if err != nil {
			return fmt.Errorf("tree %s: %w", p, err)
		}
		for _, e := range t.Entries {
			p := path.Join(p, e.Name)
			switch e.Mode {
			case filemode.Dir:
				if err := walk(e.Hash, p); err != nil {
					return err
				}
			case filemode.Regular, filemode.Deprecated, filemode.Executable, filemode.Symlink:
				if err := checkSize(src, e.Hash, "file", p); err != nil {
					return err
				}
				n, _ := src.EncodedObjectSize(e.Hash) // checkSize read it
				if total += n; total > maxTreeBytes {
					return errTreeTooLarge
				}
				if err := copyObject(src, dst, plumbing.BlobObject, e.Hash); err != nil {
					return fmt.Errorf("file %s: %w", p, err)
				}
			}
		}
		return nil
	}
	if err := walk(root, dir); err != nil {
		return nil, err
	}
	return &treeFS{objs: dst, root: root, mtime: mtime}, nil
}

// checkSize reads the size of the object h, the file or directory p, from
// its header without reading its content, and fails if it is over
// maxObjectBytes.
func checkSize(src storer.EncodedObjectStorer, h plumbing.Hash, what, p string) error {
	n, err := src.EncodedObjectSize(h)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, p, err)
	}
	if n > maxObjectBytes {
		return sizeError(fmt.Sprintf("%s %q is %s, over the %d MiB limit for one config %s (hint: a tailnet config is kilobytes; check --path, and keep large files out of it)",
			what, p, mib(n), maxObjectBytes>>20, what))
	}
	return nil
}

// copyObject copies one object's bytes, so dst never refers back to src's
// pack files or caches.
func copyObject(src, dst storer.EncodedObjectStorer, t plumbing.ObjectType, h plumbing.Hash) error {
	if _, err := dst.EncodedObject(t, h); err == nil {
		return nil
	}
	o, err := src.EncodedObject(t, h)
	if err != nil {
		return err
	}
	r, err := o.Reader()
	if err != nil {
		return err
	}
	defer r.Close()
	c := dst.NewEncodedObject()
	c.SetType(t)
	w, err := c.Writer()
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, r); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	if c.Hash() != h {
		return fmt.Errorf("object %s: content hashes to %s", h, c.Hash())
	}
	_, err = dst.SetEncodedObject(c)
	return err
}

// treeFS is a read-only fs.FS over a Git tree held in a private in-memory
// object store. Trees are decoded afresh on every lookup (go-git's Tree
// caches lazily and is not safe for concurrent use), so a treeFS may be used
// from many goroutines. Every entry's ModTime is the commit time. Symlinks
// are listed with fs.ModeSymlink (as os.ReadDir does) and followed by Open,
// Stat, ReadFile and ReadDir when their target is a relative path inside
// the tree; links leaving it (absolute, or above the config root) fail.
type treeFS struct {
	objs  *memory.Storage
	root  plumbing.Hash
	mtime time.Time
}

var (
	_ fs.ReadDirFS  = (*treeFS)(nil)
	_ fs.ReadFileFS = (*treeFS)(nil)
	_ fs.StatFS     = (*treeFS)(nil)
)

// node is one resolved path in the tree.
type node struct {
	name string // base name; "." for the root
	mode filemode.FileMode
	hash plumbing.Hash
}

// maxLinkHops bounds symlink resolution, like the kernel's ELOOP limit.
const maxLinkHops = 40

// lookup resolves name, following symlinks (relative ones that stay inside
// the tree) in every element but, with lstat, the last.
func (f *treeFS) lookup(op, name string, lstat bool) (node, error) {
	if !fs.ValidPath(name) {
		return node{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	fail := func(err error) (node, error) { return node{}, &fs.PathError{Op: op, Path: name, Err: err} }
	root := node{name: ".", mode: filemode.Dir, hash: f.root}
	n, dir := root, "."
	rest := name
	if rest == "." {
		rest = ""
	}
	for hops := 0; rest != ""; {
		elem, more, _ := strings.Cut(rest, "/")
		rest = more
		if n.mode != filemode.Dir {
			return fail(fs.ErrNotExist)
		}
		t, err := object.GetTree(f.objs, n.hash)
		if err != nil {
			return fail(err)
		}
		i := slices.IndexFunc(t.Entries, func(e object.TreeEntry) bool { return e.Name == elem })
		if i < 0 {
			return fail(fs.ErrNotExist)
		}
		e := t.Entries[i]
		if e.Mode != filemode.Symlink || (lstat && rest == "") {
			n, dir = node{name: e.Name, mode: e.Mode, hash: e.Hash}, path.Join(dir, elem)
			continue
		}
		if hops++; hops > maxLinkHops {
			return fail(errors.New("too many levels of symbolic links"))
		}
		target, err := f.blob(e.Hash)
		if err != nil {
			return fail(err)
		}
		resolved := path.Join(dir, string(target))
		if path.IsAbs(string(target)) || !fs.ValidPath(resolved) {
			return fail(fmt.Errorf("symlink %s points outside the config tree", path.Join(dir, elem)))
		}
		// Start again from the root with the target plus what is left.
		n, dir = root, "."
		rest = strings.TrimPrefix(path.Join(resolved, rest), ".")
		rest = strings.TrimPrefix(rest, "/")
	}
	n.name = path.Base(name) // a followed link keeps the name it was opened by
	return n, nil
}

func (f *treeFS) info(n node) (fileInfo, error) {
	fi := fileInfo{name: n.name, mtime: f.mtime}
	switch n.mode {
	case filemode.Dir:
		fi.mode = fs.ModeDir | 0o555
	case filemode.Executable:
		fi.mode = 0o555
	case filemode.Symlink:
		fi.mode = fs.ModeSymlink | 0o777
	case filemode.Submodule:
		fi.mode = fs.ModeIrregular
		return fi, nil // the commit object is not in this repository
	default:
		fi.mode = 0o444
	}
	if n.mode != filemode.Dir {
		o, err := f.objs.EncodedObject(plumbing.BlobObject, n.hash)
		if err != nil {
			return fi, err
		}
		fi.size = o.Size()
	}
	return fi, nil
}

func (f *treeFS) Open(name string) (fs.File, error) {
	n, err := f.lookup("open", name, false)
	if err != nil {
		return nil, err
	}
	fi, err := f.info(n)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	switch n.mode {
	case filemode.Dir:
		return &treeDir{fsys: f, path: name, info: fi, hash: n.hash}, nil
	case filemode.Submodule:
		return nil, &fs.PathError{Op: "open", Path: name, Err: errors.New("submodules in the config tree are not supported")}
	}
	data, err := f.blob(n.hash)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return &blobFile{Reader: bytes.NewReader(data), info: fi}, nil
}

func (f *treeFS) blob(h plumbing.Hash) ([]byte, error) {
	o, err := f.objs.EncodedObject(plumbing.BlobObject, h)
	if err != nil {
		return nil, err
	}
	return readObject(o)
}

// readObject returns the content of a Git object.
func readObject(o plumbing.EncodedObject) ([]byte, error) {
	r, err := o.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func (f *treeFS) ReadFile(name string) ([]byte, error) {
	file, err := f.Open(name)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	b, ok := file.(*blobFile)
	if !ok {
		return nil, &fs.PathError{Op: "read", Path: name, Err: errors.New("is a directory")}
	}
	data := make([]byte, b.Len())
	_, err = io.ReadFull(b, data)
	return data, err
}

func (f *treeFS) Stat(name string) (fs.FileInfo, error) {
	n, err := f.lookup("stat", name, false)
	if err != nil {
		return nil, err
	}
	fi, err := f.info(n)
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	return fi, nil
}

func (f *treeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	n, err := f.lookup("readdir", name, false)
	if err != nil {
		return nil, err
	}
	if n.mode != filemode.Dir {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	return f.entries(name, n.hash)
}

func (f *treeFS) entries(name string, h plumbing.Hash) ([]fs.DirEntry, error) {
	t, err := object.GetTree(f.objs, h)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	out := make([]fs.DirEntry, 0, len(t.Entries))
	for _, e := range t.Entries {
		fi, err := f.info(node{name: e.Name, mode: e.Mode, hash: e.Hash})
		if err != nil {
			return nil, &fs.PathError{Op: "readdir", Path: path.Join(name, e.Name), Err: err}
		}
		out = append(out, fs.FileInfoToDirEntry(fi))
	}
	// Git sorts directories as if their names ended in "/"; fs wants plain
	// name order.
	slices.SortFunc(out, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

type fileInfo struct {
	name  string
	size  int64
	mode  fs.FileMode
	mtime time.Time
}

func (fi fileInfo) Name() string       { return fi.name }
func (fi fileInfo) Size() int64        { return fi.size }
func (fi fileInfo) Mode() fs.FileMode  { return fi.mode }
func (fi fileInfo) ModTime() time.Time { return fi.mtime }
func (fi fileInfo) IsDir() bool        { return fi.mode.IsDir() }
func (fi fileInfo) Sys() any           { return nil }

type blobFile struct {
	*bytes.Reader
	info fileInfo
}

func (b *blobFile) Stat() (fs.FileInfo, error) { return b.info, nil }
func (b *blobFile) Close() error               { return nil }

type treeDir struct {
	fsys *treeFS
	path string
	info fileInfo
	hash plumbing.Hash

	list []fs.DirEntry // nil until the first ReadDir
	read bool
}

func (d *treeDir) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *treeDir) Close() error               { return nil }
func (d *treeDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.path, Err: errors.New("is a directory")}
}

func (d *treeDir) ReadDir(n int) ([]fs.DirEntry, error) {
	if !d.read {
		list, err := d.fsys.entries(d.path, d.hash)
		if err != nil {
			return nil, err
		}
		d.list, d.read = list, true
	}
	if n <= 0 {
		out := d.list
		d.list = nil
		return out, nil
	}
	if len(d.list) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(d.list))
	out := d.list[:n:n]
	d.list = d.list[n:]
	return out, nil
}
