package cmdline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/daemon"
	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
	"github.com/git-remote-daemon/git-remote-daemon/internal/pairing"
	"github.com/git-remote-daemon/git-remote-daemon/internal/thnode"
	"github.com/git-remote-daemon/git-remote-daemon/protocol"
	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// pairer carries out PAIR and PAIRJOIN for a repository, with the node
// of its Service: in the daemon (stdin and the control socket), or in
// `git-remote-daemon pair` when no daemon runs.
type pairer struct {
	log     *slog.Logger
	inviter *pairing.Inviter
	// service runs the repository's node; nil for none.
	service *thnode.Service
	repo    daemon.Repo
	// reload makes the daemon take up a remote pairing added (nil: none runs).
	reload func(ctx context.Context) error
}

func newPairer(log *slog.Logger) *pairer {
	return &pairer{log: log, inviter: &pairing.Inviter{Logger: log}}
}

// nodeWait bounds the wait for the repository's node to start (after a
// RELOAD that set remotedaemon.thListen).
const nodeWait = 5 * time.Second

// node returns the repository's running node, waiting a little for a
// link to start; nil when none runs here (none at all, or another
// process of the identity hosts it: see Service.Link).
func (p *pairer) node(ctx context.Context) *thnode.Node {
	if p.service == nil {
		return nil
	}
	if p.service.Link() == nil {
		ctx, cancel := context.WithTimeout(ctx, nodeWait)
		defer cancel()
		p.service.NextLink(ctx, nil)
	}
	return p.service.Node()
}

// handle carries out m, a Pair or a PairJoin, sending PAIRCODE and
// PAIRED with reply.
func (p *pairer) handle(ctx context.Context, m protocol.Message, reply func(protocol.Message) error) error {
	cfg, err := gitcfg.Read(ctx, p.repo.Dir)
	if err != nil {
		return err
	}
	switch m := m.(type) {
	case protocol.Pair:
		return p.invite(ctx, cfg, m, reply)
	case protocol.PairJoin:
		return p.join(ctx, cfg, m, reply)
	}
	return fmt.Errorf("%s is not a pairing request", m.Verb())
}

// errNoListen: an inviter must listen where the joiner can reach it.
var errNoListen = errors.New("remotedaemon.thListen is not set: the other side needs a fixed address to reach this repository " +
	"(git config remotedaemon.thListen 0.0.0.0:42424, or git-remote-daemon pair invite --listen 0.0.0.0:42424)")

func (p *pairer) invite(ctx context.Context, cfg *gitcfg.Config, m protocol.Pair, reply func(protocol.Message) error) error {
	if err := pairing.CheckName(ctx, p.repo.Dir, m.Name); err != nil {
		return err
	}
	if v, _ := cfg.Get("remotedaemon.thlisten"); v == "" {
		return errNoListen
	}
	add := func(ctx context.Context, peer thnode.Addr, suggested string) (string, error) {
		name, err := pairing.Remote(ctx, p.repo.Dir, peer, pairing.RemoteOptions{Name: m.Name, Suggested: suggested, AllowPush: m.AllowPush})
		if err != nil {
			return "", err
		}
		p.reloadNow(ctx)
		return name, nil
	}
	node := p.node(ctx)
	if node == nil && p.service != nil && p.service.Link() != nil {
		return p.inviteAtHost(ctx, cfg, m, add, reply)
	}
	if node == nil {
		return errors.New("the telehash node is not running (see the log)")
	}
	repoID, err := thnode.RepoID(cfg, p.repo.CommonDir)
	if err != nil {
		return err
	}
	inv, err := p.inviter.Open(node, pairing.InviteOptions{
		Timeout:   time.Duration(m.Timeout) * time.Second,
		Suggested: pairing.Suggestion(cfg),
		Repo:      repoID,
		Add:       add})
	if err != nil {
		return err
	}
	if err := reply(protocol.PairCode{Code: inv.Code.String()}); err != nil {
		inv.Wait(canceled())
		return err
	}
	r := inv.Wait(ctx)
	if r.Err != nil {
		return r.Err
	}
	return reply(protocol.Paired{Remote: r.Remote, URL: r.Peer.String()})
}

// inviteAtHost has the process hosting the identity's node (another
// repository's daemon, or git-remote-th) hold the invitation: its node
// admits the joiner and checks the proof; this repository adds the
// remote naming the joiner (add), and the joiner gets its id.
func (p *pairer) inviteAtHost(ctx context.Context, cfg *gitcfg.Config, m protocol.Pair, add pairing.AddRemote, reply func(protocol.Message) error) error {
	remote, peer, err := p.service.InviteAtHost(ctx, thnode.HeldInvitation{
		Timeout:   time.Duration(m.Timeout) * time.Second,
		Suggested: pairing.Suggestion(cfg),
		Opened:    func(code string) error { return reply(protocol.PairCode{Code: code}) },
		Add:       add,
	})
	if err != nil {
		return err
	}
	return reply(protocol.Paired{Remote: remote, URL: peer.String()})
}

func (p *pairer) reloadNow(ctx context.Context) {
	if p.reload == nil {
		return
	}
	if err := p.reload(ctx); err != nil {
		p.log.Warn("pairing: reloading the configuration", "err", err)
	}
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func (p *pairer) join(ctx context.Context, cfg *gitcfg.Config, m protocol.PairJoin, reply func(protocol.Message) error) error {
	code, err := pairing.ParseCode(m.Code)
	if err != nil {
		return err
	}
	if err := pairing.CheckName(ctx, p.repo.Dir, m.Name); err != nil {
		return err
	}
	id, err := thnode.IdentityFor(cfg, p.repo.CommonDir)
	if err != nil {
		return err
	}
	self := thnode.Addr{Hashname: id.Hashname(), Keys: id.Keys()}
	if self.Repo, err = thnode.RepoID(cfg, p.repo.CommonDir); err != nil {
		return err
	}
	if listen, _ := cfg.Get("remotedaemon.thlisten"); listen != "" {
		if paths, err := thnode.ListenPaths(listen); err == nil {
			self.Paths = paths
		}
	}
	dial, done := p.dialer(cfg, id)
	defer done()
	joined, err := pairing.Join(ctx, dial, self, code, pairing.Suggestion(cfg))
	if err != nil {
		return err
	}
	name, err := pairing.Remote(ctx, p.repo.Dir, joined.Inviter, pairing.RemoteOptions{Name: m.Name, Suggested: joined.Suggested, AllowPush: m.AllowPush})
	if err != nil {
		return fmt.Errorf("paired with %s, but adding its remote failed: %w", joined.Inviter.Hashname, err)
	}
	p.reloadNow(ctx)
	return reply(protocol.Paired{Remote: name, URL: joined.Inviter.String()})
}

// dialer is the way to the inviter: the repository's node when it runs,
// else a joinNode (closed by done).
func (p *pairer) dialer(cfg *gitcfg.Config, id *telehash.Identity) (pairing.Dialer, func()) {
	if n := p.currentNode(); n != nil {
		return func(ctx context.Context, a thnode.Addr, svc string) (io.ReadWriteCloser, error) {
			return n.Dial(ctx, a, svc)
		}, func() {}
	}
	timeout, _ := thnode.LinkTimeout(cfg)
	j := &joinNode{id: id, linkTimeout: timeout, log: p.log}
	return j.dial, j.close
}

func (p *pairer) currentNode() *thnode.Node {
	if p.service == nil {
		return nil
	}
	return p.service.Node()
}

// fromStdin passes on the commands of in, except PAIR and PAIRJOIN,
// which it carries out itself, each in its own goroutine, answering on
// out (a failure is ERROR * pair: <why>).
func (p *pairer) fromStdin(ctx context.Context, in <-chan protocol.Message, out daemon.Emitter) <-chan protocol.Message {
	fwd := make(chan protocol.Message)
	go func() {
		defer close(fwd)
		for m := range in {
			switch m.(type) {
			case protocol.Pair, protocol.PairJoin:
				go func() {
					err := p.handle(ctx, m, func(r protocol.Message) error { out.Emit(r); return nil })
					if err != nil && ctx.Err() == nil {
						out.Emit(protocol.Error{Remote: protocol.Daemon, Text: "pair: " + err.Error()})
					}
				}()
				continue
			}
			select {
			case fwd <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	return fwd
}
