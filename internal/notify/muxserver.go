package notify

import (
	"context"
	"fmt"

	"github.com/git-remote-daemon/git-remote-daemon/helper"
)

// open starts a stream served by helper.Serve: the client's first frame
// names the service (git-upload-pack or git-receive-pack) and the
// repository, resolved as WATCH paths are. A stream that cannot be opened
// is answered with EOF alone; a reused id is a protocol error.
func (s *server) open(id string) {
	st := newStream(id, s.sendData, nil)
	st.drop = func() { s.streams.remove(st) }
	if err := s.streams.add(st, MaxStreams); err != nil {
		if s.streams.get(id) != nil {
			_ = s.send(Msg{Kind: Error, ID: "*", Text: err.Error()})
			return
		}
		s.opts.Logger.Warn("stream refused", "stream", id, "err", err)
		_ = s.sendData(Msg{Kind: EOF, ID: id})
		return
	}
	log := s.opts.Logger.With("stream", id)
	opts := helper.ServeOptions{
		Resolve: func(_ context.Context, path string) (string, error) {
			dir, err := s.opts.Resolve(path)
			if err != nil {
				return "", fmt.Errorf("%w: %v", helper.ErrRepositoryNotFound, err)
			}
			return dir, nil
		},
		Logger: log,
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := helper.Serve(s.ctx, st, opts); err != nil {
			log.Info("stream session ended", "err", err)
		}
		_ = st.Close()
	}()
}

// sendData writes a stream's line. It takes only the write lock: a
// stream's bytes never wait for the watches' state.
func (s *server) sendData(m Msg) error {
	return s.write(m.String())
}
