// Package redact masks credentials in text meant for logs, the status
// file and the daemon's protocol lines: the password of a URL's user
// information, a token given as a URL's user name, and the values of
// query parameters named for secrets (token, access_token, password,
// key, sig, ...). Public keys are not secrets: the cs3a key of a th::
// URL stays readable.
package redact

import (
	"net/url"
	"regexp"
	"strings"
)

// Mask replaces a credential.
const Mask = "xxxxx"

var (
	// userInfo is a URL's scheme and user information, up to the last
	// "@" of its authority.
	userInfo = regexp.MustCompile(`(?i)\b([a-z][a-z0-9+.\-]*://)([^\s/?#'"<>]*)@`)
	// param is one query parameter, with the character before it.
	param = regexp.MustCompile(`([?&;])([^\s=&#?;'"<>]+)=([^\s&#;'"<>]*)`)
)

// String masks the credentials in s: a URL, or free text that quotes
// URLs (git's error messages do):
//
//	https://me:s3cret@example.org/r.git  →  https://me:xxxxx@example.org/r.git
//	https://example.org/r.git?token=abc  →  https://example.org/r.git?token=xxxxx
func String(s string) string {
	if strings.Contains(s, "://") {
		s = userInfo.ReplaceAllStringFunc(s, func(m string) string {
			sub := userInfo.FindStringSubmatch(m)
			scheme, info := sub[1], sub[2]
			if user, _, ok := strings.Cut(info, ":"); ok {
				return scheme + user + ":" + Mask + "@"
			}
			if isToken(info) {
				return scheme + Mask + "@"
			}
			return m
		})
	}
	if strings.Contains(s, "=") {
		s = param.ReplaceAllStringFunc(s, func(m string) string {
			sub := param.FindStringSubmatch(m)
			if sub[3] == "" || !Secret(sub[2]) {
				return m
			}
			return sub[1] + sub[2] + "=" + Mask
		})
	}
	return s
}

// tokenPrefixes start the access tokens of common git hosts, which take
// them as a URL's user name (https://<token>@github.com/...).
var tokenPrefixes = []string{"ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-", "gldt-", "glcbt-"}

// isToken says whether a URL's user name (without a password) looks
// like an access token rather than a login: a known token prefix, or
// long and with digits.
func isToken(user string) bool {
	for _, p := range tokenPrefixes {
		if strings.HasPrefix(user, p) {
			return true
		}
	}
	return len(user) >= 20 && strings.ContainsAny(user, "0123456789")
}

// secretWords make a parameter secret wherever they appear in its name
// (lower case, without "-", "_", "." and "[]").
var secretWords = []string{"token", "passw", "secret", "signature", "credential", "auth", "session",
	"cookie", "jwt", "bearer", "hmac", "apikey", "privatekey"}

// secretNames are secret as whole names only (as parts of other names
// they are too common: "pass" in "passive", "sig" in "design").
var secretNames = map[string]bool{"sig": true, "pw": true, "pwd": true, "pass": true, "code": true,
	"otp": true, "sid": true}

// Secret says whether a query parameter named name carries a secret.
// Keys are secret unless public ("pubkey", "public_key"); the cipher set
// keys of th:: URLs (cs1a, cs3a) are public keys.
func Secret(name string) bool {
	if n, err := url.QueryUnescape(name); err == nil {
		name = n
	}
	n := strings.NewReplacer("-", "", "_", "", ".", "", "[", "", "]", "").Replace(strings.ToLower(name))
	if secretNames[n] {
		return true
	}
	for _, w := range secretWords {
		if strings.Contains(n, w) {
			return true
		}
	}
	return strings.Contains(n, "key") && !strings.HasPrefix(n, "pub")
}
