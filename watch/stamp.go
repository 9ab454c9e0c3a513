package watch

import (
	"os"
	"syscall"
	"time"
)

// racyWindow: a file or directory modified this close to the moment its
// stamp was taken may change again without its stamp changing (file
// times are as coarse as the kernel's tick, a second on some file
// systems), so its next check looks again (git's "racy clean" rule).
const racyWindow = 2 * time.Second

// stamp is what a stat says about a file or directory: git changes the
// refs only by creating, renaming and removing entries in refs/
// directories and by replacing packed-refs, all of which move these.
type stamp struct {
	exists      bool
	ino         uint64
	size, mtime int64
	racy        bool
}

// stamps are the stamps of a listing: every refs directory it read and
// packed-refs.
type stamps map[string]stamp

func stampOf(path string, now time.Time) stamp {
	fi, err := os.Stat(path)
	if err != nil {
		return stamp{}
	}
	s := stamp{exists: true, size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ino = uint64(sys.Ino)
	}
	s.racy = now.Sub(fi.ModTime()) < racyWindow
	return s
}

// add stamps path; called before the path is read, so a change during
// the read moves the stamp after it.
func (st stamps) add(path string) {
	if st != nil {
		st[path] = stampOf(path, time.Now())
	}
}

// changed reports whether any stamped path may have changed since: its
// stat differs or it was racy. Only stats, no reads.
func (st stamps) changed() bool {
	if st == nil {
		return true
	}
	now := time.Now()
	for path, old := range st {
		if old.racy {
			return true
		}
		s := stampOf(path, now)
		s.racy = false
		if s != old {
			return true
		}
	}
	return false
}
