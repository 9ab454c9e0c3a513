// Package helper is the remote-helper framework git-remote-th and
// git-remote-xmpp share: plain `git clone th::...`, `git fetch` and
// `git push` work by carrying git's own pack protocol over a byte stream
// to a peer, where the real git upload-pack or git receive-pack runs in
// the served repository.
//
// Run is the git side, the process git starts as
// `git-remote-<scheme> <remote> <url>` (gitremote-helpers(7)). It offers
// only "connect" and "option", like git-annex's tor helper. Serve is the
// far side. Between them runs the frame protocol of frame.go over any
// reliable byte stream a transport provides (Conn).
//
// What git 2.39 does with a connect helper, as the tests observe it:
//
//   - git does not put GIT_PROTOCOL in the helper's environment; it only
//     discovers the version from the service's first line. The helper must
//     ask for version=2 itself (DefaultGitProtocol reads protocol.version,
//     which -c options reach through GIT_CONFIG_PARAMETERS), or every
//     fetch is protocol v0.
//   - git writes nothing after "connect" until it has read the empty line,
//     and the service speaks first.
//   - Once connected, stdin EOF is a half close, not git going away: for a
//     push git closes the helper's stdin right after the pack and then
//     reads receive-pack's report; for a v2 fetch it closes stdin when
//     done and waits for the helper to exit. So EOF travels as an EOF
//     frame to the service's stdin, and the helper ends when the service's
//     EXIT arrives (as ssh ends when the remote command exits). In v0,
//     upload-pack exits after sending the pack, before git closes stdin.
//   - git exits 128 silently when the helper exits without answering
//     "connect", so the helper's own "fatal: ..." line is all the user
//     sees; the empty line is therefore sent only once the far side has
//     started the service (READY).
package helper
