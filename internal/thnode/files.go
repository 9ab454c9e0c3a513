package thnode

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// configFiles are the files git reads the repository's configuration
// from (includes aside): the repository's, the worktree's, the user's
// and the system's.
func configFiles(gitDir, commonDir string) []string {
	files := []string{filepath.Join(commonDir, "config"), filepath.Join(gitDir, "config.worktree")}
	if g := os.Getenv("GIT_CONFIG_GLOBAL"); g != "" {
		files = append(files, g)
	} else {
		home, _ := os.UserHomeDir()
		if home != "" {
			files = append(files, filepath.Join(home, ".gitconfig"))
		}
		xdg := os.Getenv("XDG_CONFIG_HOME")
		if xdg == "" && home != "" {
			xdg = filepath.Join(home, ".config")
		}
		if xdg != "" {
			files = append(files, filepath.Join(xdg, "git", "config"))
		}
	}
	if os.Getenv("GIT_CONFIG_NOSYSTEM") == "" {
		if g := os.Getenv("GIT_CONFIG_SYSTEM"); g != "" {
			files = append(files, g)
		} else {
			files = append(files, "/etc/gitconfig")
		}
	}
	return files
}

// filesSignature changes whenever one of files is written, replaced
// (git writes its config to a lock file renamed over it), created or
// removed.
func filesSignature(files []string) string {
	var b strings.Builder
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			b.WriteString("-;")
			continue
		}
		var ino uint64
		var ctime int64
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			// a config renamed over the old one is a new inode; ctime
			// catches an edit within the mtime's granularity
			ino, ctime = uint64(st.Ino), statCtime(st)
		}
		fmt.Fprintf(&b, "%d,%d,%d,%d;", fi.Size(), fi.ModTime().UnixNano(), ino, ctime)
	}
	return b.String()
}
