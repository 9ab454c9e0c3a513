package gitrepo

import "strings"

// Refspec is one fetch refspec, e.g. +refs/heads/*:refs/remotes/origin/*
// (Force set), or a negative one, ^refs/heads/tmp/* (Negative set, no
// Dst).
type Refspec struct {
	Src, Dst string
	Force    bool
	Negative bool
}

// Refspecs are a remote's fetch refspecs, in order.
type Refspecs []Refspec

// ParseRefspecs parses remote.<name>.fetch values. Those that map
// nothing (no source or no destination) are left out: they fetch into no
// local ref.
func ParseRefspecs(specs []string) Refspecs {
	var out Refspecs
	for _, s := range specs {
		var force bool
		s, force = strings.CutPrefix(s, "+")
		if neg, ok := strings.CutPrefix(s, "^"); ok {
			if neg != "" {
				out = append(out, Refspec{Src: neg, Negative: true})
			}
			continue
		}
		src, dst, _ := strings.Cut(s, ":")
		if src == "" || dst == "" {
			continue
		}
		out = append(out, Refspec{Src: src, Dst: dst, Force: force})
	}
	return out
}

// Match reports whether ref matches the refspec's source, and the local
// ref it maps to (empty for a negative refspec).
func (s Refspec) Match(ref string) (string, bool) {
	pre, post, glob := strings.Cut(s.Src, "*")
	if !glob {
		return s.Dst, ref == s.Src
	}
	if !strings.HasPrefix(ref, pre) || !strings.HasSuffix(ref, post) || len(ref) < len(pre)+len(post) {
		return "", false
	}
	if s.Negative {
		return "", true
	}
	star := ref[len(pre) : len(ref)-len(post)]
	return strings.Replace(s.Dst, "*", star, 1), true
}

// Map maps a remote ref to the local ref the refspecs fetch it into: the
// first positive refspec that matches, unless a negative one matches.
func (specs Refspecs) Map(ref string) (string, bool) {
	for _, s := range specs {
		if _, ok := s.Match(ref); ok && s.Negative {
			return "", false
		}
	}
	for _, s := range specs {
		if s.Negative {
			continue
		}
		if l, ok := s.Match(ref); ok {
			return l, true
		}
	}
	return "", false
}
