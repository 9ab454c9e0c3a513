package thnode

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
)

// maxLocalLine caps a request line on the lending socket.
const maxLocalLine = 8192

// handleLocal serves one connection to the lending socket (see the
// exchange above ServeLocal).
func (n *Node) handleLocal(ctx context.Context, c *net.UnixConn) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	br := bufio.NewReaderSize(c, 4096)
	line, err := readLine(br)
	if err != nil {
		return
	}
	req, err := parseLocalRequest(line)
	if err != nil {
		fmt.Fprintf(c, "ERR %s\n", oneLine(err))
		return
	}
	switch req.Verb {
	case "DIAL":
		n.lend(ctx, c, br, req)
	case "UNLINK":
		n.Mesh.Unlink(req.Peer)
		_, _ = io.WriteString(c, "OK\n")
	case "REGISTER":
		n.serveRegistered(ctx, c, br, req.Reg)
	case "INVITE":
		n.holdInvitation(ctx, c, br, req.Invite)
	}
}

// setRoutingFrom applies a registered repository's routing
// configuration.
func (n *Node) setRoutingFrom(source string, cfg *gitcfg.Config) {
	rt, err := ParseRouting(cfg)
	if err != nil {
		n.log.Warn("routing configuration", "dir", source, "err", err)
	}
	n.SetRouting(source, rt)
}

// readLine reads a request line of at most maxLocalLine bytes.
func readLine(br *bufio.Reader) (string, error) {
	var b []byte
	for {
		part, more, err := br.ReadLine()
		if err != nil {
			return "", err
		}
		b = append(b, part...)
		if len(b) > maxLocalLine {
			return "", fmt.Errorf("request line over %d bytes", maxLocalLine)
		}
		if !more {
			return string(b), nil
		}
	}
}

// lend serves a DIAL: the stream's bytes both ways.
func (n *Node) lend(ctx context.Context, c *net.UnixConn, br *bufio.Reader, req localRequest) {
	addr := req.Addr
	// The dialler hanging up ends the dial (it sends nothing before OK):
	// until it is done, one reader watches for that.
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	peeked := make(chan struct{})
	go func() {
		defer close(peeked)
		if _, err := br.Peek(1); err != nil {
			cancel()
		}
	}()
	if req.Wait && !n.canReach(addr) && !n.waitLinked(dctx, addr.Hashname) {
		fmt.Fprintf(c, "ERR %s: not linked\n", addr.Hashname)
		return
	}
	if req.Wait && addr.XMPP != "" && !n.waitXMPP(dctx, addr) { // its presence (xmppnode.go)
		fmt.Fprintf(c, "ERR %s: %s\n", addr.XMPP, ErrXMPPOffline)
		return
	}
	s, err := n.Dial(dctx, addr, req.Service)
	if err != nil {
		fmt.Fprintf(c, "ERR %s\n", oneLine(err))
		return
	}
	defer s.Close()
	if _, err := io.WriteString(c, "OK\n"); err != nil {
		return
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-peeked // the reader is ours alone from now on
		if _, err := io.Copy(s, br); err == nil {
			_ = s.CloseWrite()
		} else {
			s.Abort("local end failed")
		}
	}()
	_, _ = io.Copy(c, s)
	_ = c.CloseWrite()
	wg.Wait()
}

// Registration is what a daemon that does not host its identity's node
// tells the host about the repository it serves. The host reads the
// repository's configuration itself.
type Registration struct {
	// Dir is where git runs in the repository, GitDir its git directory
	// and CommonDir the one shared by its worktrees.
	Dir       string `json:"dir"`
	GitDir    string `json:"git_dir"`
	CommonDir string `json:"common_dir"`
	// Listen is the address the repository's configuration wants the
	// node on (remotedaemon.thListen, or what its remotes need).
	Listen string `json:"listen,omitempty"`
}

// serveRegistered serves the repository r on the node while c stays
// open: its allow list follows its configuration (checked every second,
// and at once on CONFIG).
func (n *Node) serveRegistered(ctx context.Context, c *net.UnixConn, br *bufio.Reader, r Registration) {
	read := n.opts.ReadConfig
	if read == nil {
		read = gitcfg.Read
	}
	var allow AllowList
	cfg, err := read(ctx, r.Dir)
	if err != nil {
		fmt.Fprintf(c, "ERR %s\n", oneLine(err))
		return
	}
	id, err := RepoID(cfg, r.CommonDir)
	if err != nil {
		fmt.Fprintf(c, "ERR %s\n", oneLine(err))
		return
	}
	allow.Set(cfg)
	n.registeredXMPP(cfg, r.Dir) // xmppnode.go: its xmpp:: peers pinned too
	n.setRoutingFrom(r.GitDir, cfg)
	defer n.SetRouting(r.GitDir, Routing{})
	remove := n.AddRepo(&Repo{ID: id, GitDir: r.GitDir, Hub: n.opts.Hub, Permission: allow.Permission})
	defer remove()
	defer n.regs.add(r.GitDir, id)() // INVITE names it (local_invite.go)
	n.log.Info("serving a repository of another daemon", "repo", id, "dir", r.Dir)
	defer n.log.Info("no longer serving a repository of another daemon", "repo", id, "dir", r.Dir)
	at := n.Mesh.Addr().String()
	if n.opts.OnRegister != nil {
		at = n.opts.OnRegister(r.Listen)
	}
	if _, err := fmt.Fprintf(c, "OK %s\n", at); err != nil {
		return
	}
	files := configFiles(r.GitDir, r.CommonDir)
	seen := filesSignature(files)
	reload := func() error {
		now := filesSignature(files)
		cfg, err := read(ctx, r.Dir)
		if err != nil {
			return err
		}
		seen = now
		n.Revoke(allow.Set(cfg))
		n.registeredXMPP(cfg, r.Dir)
		n.setRoutingFrom(r.GitDir, cfg)
		return nil
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		for {
			line, err := readLine(br)
			if err != nil {
				return
			}
			select {
			case lines <- line:
			case <-ctx.Done():
				return
			}
		}
	}()
	every := n.opts.RefreshEvery
	if every <= 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case line, ok := <-lines:
			if !ok {
				return // the daemon stopped, or moved its node
			}
			if line != "CONFIG" {
				fmt.Fprintf(c, "ERR bad request\n")
				continue
			}
			if err := reload(); err != nil {
				fmt.Fprintf(c, "ERR %s\n", oneLine(err))
				continue
			}
			_, _ = io.WriteString(c, "OK\n")
		case <-t.C:
			if filesSignature(files) == seen {
				continue
			}
			if err := reload(); err != nil && ctx.Err() == nil {
				n.log.Warn("re-reading the configuration for the th:: allow list", "dir", r.Dir, "err", err)
			}
		}
	}
}
