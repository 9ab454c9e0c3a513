package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/git-remote-daemon/git-remote-daemon/internal/xmpp"
	"github.com/git-remote-daemon/git-remote-daemon/internal/xmpptest"
)

// TestIntegrationXMPPServerSeesNoContent is what the XMPP server sees of
// real git over xmpp::: Alice's daemon serves her repository, Bob runs
// `git clone xmpp::...`, pushes a commit on a new branch and fetches
// Alice's next commit, all with the real git and git-remote-xmpp. Both
// log in to a throwaway Prosody in plaintext (xmppTLS=plaintext on
// loopback), each through a recording TCP proxy of its own; Prosody's
// proxy65 tells clients to connect to 127.0.0.2, where a third
// recording proxy forwards to it, so the SOCKS5 bytestreams are
// recorded too. Both bulk paths run: messages only
// (remotedaemon.xmppBytestreams=false) and the bytestream.
//
// Nothing of the repositories shows in any recorded byte, either way, nor
// in the decoded payload of any datagram element: no branch or ref name,
// no object id (full hex, nor the 20 raw bytes trees carry), no file
// content, no commit message. Git is told not to compress
// (core.compression=0, pack.compression=0), so an unencrypted pack would
// show the files' content as it is.
//
// The check is shown able to fail: the recordings hold both accounts'
// JIDs and the node presence, the bulk went where the mode says
// (datagrams carrying at least the content's size, or the proxy65
// connection), a plain pack of Alice's repository holds her file's
// content, and a datagram of a secret would be found.
func TestIntegrationXMPPServerSeesNoContent(t *testing.T) {
	for _, mode := range []struct {
		name        string
		bytestreams bool
	}{{"messages", false}, {"bytestream", true}} {
		t.Run(mode.name, func(t *testing.T) { serverSeesNoContent(t, mode.bytestreams) })
	}
}

func serverSeesNoContent(t *testing.T, bytestreams bool) {
	grd, err := exec.LookPath("git-remote-daemon")
	if err != nil {
		t.Fatalf("git-remote-daemon not on PATH (testscript.Main puts it there): %v", err)
	}
	srvX := xmpptest.Start(t)
	// 127.0.0.2 is loopback too (127/8): the recording proxy of the
	// bytestreams listens there on proxy65's port.
	const proxyHost = "127.0.0.2"
	if err := srvX.AdvertiseProxy(proxyHost); err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(srvX.ProxyPort)
	rec65 := newRecordingProxy(t, net.JoinHostPort(proxyHost, port), net.JoinHostPort("127.0.0.1", port))
	recs := map[string]*recordingProxy{}
	dir := t.TempDir()
	person := func(name string) []string {
		t.Helper()
		if err := srvX.Register(name, "pw-"+name); err != nil {
			t.Fatal(err)
		}
		recs[name] = newRecordingProxy(t, "127.0.0.1:0", srvX.Addr())
		home := filepath.Join(dir, name)
		if err := os.MkdirAll(home, 0o700); err != nil {
			t.Fatal(err)
		}
		cfg := fmt.Sprintf(`[init]
	defaultBranch = main
[core]
	compression = 0
[pack]
	compression = 0
[remotedaemon]
	xmppJID = %s@localhost
	xmppServer = %s
	xmppTLS = plaintext
	xmppAllowPlaintext = true
	xmppBytestreams = %v
[credential]
	helper = store
`, name, recs[name].Addr(), bytestreams)
		if err := os.WriteFile(filepath.Join(home, ".gitconfig"), []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(home, ".git-credentials"), []byte("xmpp://"+name+":pw-"+name+"@localhost\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return isolatedEnv(home, "TMPDIR="+os.TempDir())
	}
	alice, bob := person("alice"), person("bob")
	git := func(env []string, d string, args ...string) string {
		t.Helper()
		return runCmd(t, env, d, "git", args...)
	}
	tag := func(what string) string {
		var r [6]byte
		_, _ = rand.Read(r[:])
		return what + "-" + hex.EncodeToString(r[:])
	}
	aliceBranch, bobBranch := tag("alices-hidden-branch"), tag("bobs-hidden-branch")
	aliceFile, bobFile, aliceLater := tag("ALICE FILE CONTENT"), tag("BOB FILE CONTENT"), tag("ALICE LATER CONTENT")
	msgs := []string{tag("alice commit message"), tag("bob commit message"), tag("alice later message")}
	// ~200 KB per file: the bulk of each transfer.
	content := func(line string) []byte { return bytes.Repeat([]byte(line+"\n"), 200<<10/(len(line)+1)) }
	write := func(path string, b []byte) {
		t.Helper()
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	srv := filepath.Join(dir, "srv")
	git(alice, dir, "init", "-q", "-b", "main", srv)
	write(filepath.Join(srv, "a.txt"), content(aliceFile))
	git(alice, srv, "add", ".")
	git(alice, srv, "commit", "-q", "-m", msgs[0])
	git(alice, srv, "branch", aliceBranch)
	bobURL := firstLine(t, runCmd(t, bob, dir, grd, "-C", dir, "address"), "xmpp::")
	git(alice, srv, "remote", "add", "bob", bobURL)
	git(alice, srv, "config", "remote.bob.daemonWatch", "false")
	git(alice, srv, "config", "remote.bob.daemonAllowPush", "true")
	aliceURL := firstLine(t, runCmd(t, alice, srv, grd, "address"), "xmpp::")
	startServingDaemon(t, grd, srv, alice, filepath.Join(dir, "daemon.stderr"))

	// Clone, push a new branch, fetch a new commit: all over xmpp::.
	clone := filepath.Join(dir, "clone")
	git(bob, dir, "clone", "-q", aliceURL, clone)
	write(filepath.Join(clone, "b.txt"), content(bobFile))
	git(bob, clone, "add", ".")
	git(bob, clone, "commit", "-q", "-m", msgs[1])
	git(bob, clone, "push", "-q", "origin", "HEAD:refs/heads/"+bobBranch)
	if got, want := git(alice, srv, "rev-parse", bobBranch), git(bob, clone, "rev-parse", "HEAD"); got != want {
		t.Fatalf("Alice's %s is %s after the push, want %s", bobBranch, got, want)
	}
	write(filepath.Join(srv, "c.txt"), content(aliceLater))
	git(alice, srv, "add", "c.txt")
	git(alice, srv, "commit", "-q", "-m", msgs[2])
	git(bob, clone, "fetch", "-q", "origin")
	if got, want := git(bob, clone, "rev-parse", "origin/main"), git(alice, srv, "rev-parse", "main"); got != want {
		t.Fatalf("Bob's origin/main is %s after the fetch, want %s", got, want)
	}
	if got := git(bob, clone, "rev-parse", "origin/"+aliceBranch); got == "" {
		t.Fatalf("Bob's clone has no origin/%s", aliceBranch)
	}

	// What must not show: names, ids, contents, messages.
	secrets := [][]byte{[]byte(aliceBranch), []byte(bobBranch), []byte(aliceFile), []byte(bobFile), []byte(aliceLater)}
	for _, m := range msgs {
		secrets = append(secrets, []byte(m))
	}
	objects := git(alice, srv, "rev-list", "--all", "--objects")
	ids := strings.Fields(objects)
	var nIDs int
	for _, f := range ids {
		raw, err := hex.DecodeString(f)
		if len(f) != 40 || err != nil {
			continue // a path
		}
		nIDs++
		secrets = append(secrets, []byte(f), raw)
	}
	if nIDs < 9 { // 3 commits, their trees, 3 blobs
		t.Fatalf("Alice's repository lists %d objects, want at least 9", nIDs)
	}

	var all [][]byte
	for _, r := range []*recordingProxy{recs["alice"], recs["bob"], rec65} {
		all = append(all, r.recorded()...)
	}
	for _, s := range leaks(all, secrets) {
		t.Errorf("the server saw %q", s)
	}

	// The check is not blind: the XMPP layer is readable.
	for name, r := range recs {
		streams := r.recorded()
		for _, want := range []string{name + "@localhost", "urn:git-remote-daemon:node:0"} {
			if len(leaks(streams, [][]byte{[]byte(want)})) == 0 {
				t.Errorf("%s's recording (%d bytes) lacks %q: the recording is blind", name, r.size(), want)
			}
		}
	}
	// The bulk went the way of the mode.
	var datagramBytes int
	for _, st := range all {
		for _, d := range decodedDatagrams(st) {
			datagramBytes += len(d)
		}
	}
	const bulk = 3 * 200 << 10 // three files, each way at least once
	t.Logf("recorded: alice %d B, bob %d B, proxy65 %d B; %d B in datagrams",
		recs["alice"].size(), recs["bob"].size(), rec65.size(), datagramBytes)
	if bytestreams {
		if n := rec65.size(); n < bulk {
			t.Errorf("the proxy65 recording holds %d bytes, want the bulk (>= %d): the bytestreams went elsewhere", n, bulk)
		}
	} else {
		if n := rec65.size(); n != 0 {
			t.Errorf("the proxy65 recording holds %d bytes with xmppBytestreams=false", n)
		}
		if datagramBytes < bulk {
			t.Errorf("the datagrams carried %d bytes, want the bulk (>= %d)", datagramBytes, bulk)
		}
	}
	// A plain pack of the repository would show: the content is stored
	// as it is.
	packCmd := exec.Command("git", "pack-objects", "--stdout")
	packCmd.Dir, packCmd.Env = srv, alice
	packCmd.Stdin = strings.NewReader(objects + "\n")
	plain, err := packCmd.Output()
	if err != nil {
		t.Fatalf("git pack-objects: %v", err)
	}
	if got := leaks([][]byte{plain}, [][]byte{[]byte(aliceFile)}); len(got) == 0 {
		t.Error("a plain pack of Alice's repository does not show her file's content: the content check is blind")
	}
	// And a datagram carrying a secret would be found.
	clear := fmt.Sprintf("<message><d xmlns='%s'>%s</d></message>", xmpp.NSDatagram, base64.StdEncoding.EncodeToString([]byte("x"+bobBranch+"x")))
	if got := leaks([][]byte{[]byte(clear)}, [][]byte{[]byte(bobBranch)}); len(got) == 0 {
		t.Error("a secret in a datagram is not found: the datagram check is blind")
	}
	batch := fmt.Sprintf(`<message><b xmlns="%s">%s</b></message>`, xmpp.NSBatch, base64.StdEncoding.EncodeToString([]byte("\x00\x10x"+bobBranch+"x")))
	if got := leaks([][]byte{[]byte(batch)}, [][]byte{[]byte(bobBranch)}); len(got) == 0 {
		t.Error("a secret in a batch of datagrams is not found: the batch check is blind")
	}
}
