package gitcfg

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Int returns key as a git integer (see ParseInt), def when unset.
func (c *Config) Int(key string, def int64) (int64, error) {
	vs := c.values[key]
	if len(vs) == 0 {
		return def, nil
	}
	n, err := ParseInt(vs[len(vs)-1])
	if err != nil {
		return def, fmt.Errorf("%s: %w", key, err)
	}
	return n, nil
}

// ParseInt parses a git integer: decimal, with an optional k, m or g
// suffix (any case) that multiplies it by 1024, 1024² or 1024³, as `git
// config --type=int` reads it.
func ParseInt(v string) (int64, error) {
	s := strings.TrimSpace(v)
	mult := int64(1)
	if s != "" {
		switch s[len(s)-1] {
		case 'k', 'K':
			mult = 1 << 10
		case 'm', 'M':
			mult = 1 << 20
		case 'g', 'G':
			mult = 1 << 30
		}
		if mult != 1 {
			s = s[:len(s)-1]
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || (n > 0 && n > math.MaxInt64/mult) || (n < 0 && n < math.MinInt64/mult) {
		return 0, fmt.Errorf("bad numeric value %q", v)
	}
	return n * mult, nil
}
