package helper

import (
	"slices"
	"testing"
)

func TestProtocolFor(t *testing.T) {
	tests := []struct {
		version, service, want string
		ok                     bool
	}{
		{"2", UploadPack, "version=2", true},
		{"2", ReceivePack, "", true}, // git never pushes over v2
		{"1", UploadPack, "version=1", true},
		{"1", ReceivePack, "version=1", true},
		{"0", UploadPack, "", true},
		{"3", UploadPack, "", false},
		{"", UploadPack, "", false},
	}
	for _, tt := range tests {
		got, err := ProtocolFor(tt.version, tt.service)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("ProtocolFor(%q, %q) = %q, %v", tt.version, tt.service, got, err)
		}
	}
}

func TestDefaultGitProtocolFromEnv(t *testing.T) {
	t.Setenv("GIT_PROTOCOL", "version=2:object-format=sha256")
	got, err := DefaultGitProtocol(t.Context(), UploadPack)
	if err != nil || got != "version=2:object-format=sha256" {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestDefaultGitProtocolFromConfig(t *testing.T) {
	t.Setenv("GIT_PROTOCOL", "")
	t.Setenv("HOME", t.TempDir())
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	t.Setenv("GIT_CONFIG_GLOBAL", "/dev/null")
	t.Setenv("GIT_DIR", t.TempDir()+"/none")
	t.Setenv("GIT_CONFIG_COUNT", "0")
	t.Setenv("GIT_CONFIG_PARAMETERS", "")
	if got, err := DefaultGitProtocol(t.Context(), UploadPack); err != nil || got != "version=2" {
		t.Errorf("unset: got %q, %v; want version=2", got, err)
	}
	t.Setenv("GIT_CONFIG_PARAMETERS", "'protocol.version'='0'") // as `git -c protocol.version=0` passes it
	if got, err := DefaultGitProtocol(t.Context(), UploadPack); err != nil || got != "" {
		t.Errorf("-c protocol.version=0: got %q, %v; want \"\"", got, err)
	}
}

func TestServiceEnv(t *testing.T) {
	in := []string{"PATH=/bin", "GIT_DIR=/client/.git", "GIT_PROTOCOL=version=1",
		"GIT_CONFIG_PARAMETERS='a.b'='c'", "GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=a.b",
		"GIT_CONFIG_VALUE_0=c", "GIT_TRACE=1", "HOME=/h"}
	got := serviceEnv(in, "version=2")
	want := []string{"PATH=/bin", "GIT_TRACE=1", "HOME=/h", "GIT_PROTOCOL=version=2"}
	if !slices.Equal(got, want) {
		t.Errorf("serviceEnv = %q, want %q", got, want)
	}
	if got := serviceEnv(in, ""); slices.ContainsFunc(got, func(s string) bool { return s[:4] == "GIT_" && s != "GIT_TRACE=1" }) {
		t.Errorf("serviceEnv v0 = %q", got)
	}
}

func TestValidGitProtocol(t *testing.T) {
	for v, want := range map[string]bool{
		"": true, "version=2": true, "version=2:object-format=sha1": true,
		"version=2\n": false, "a\x00b": false, "\x1b[31m": false, "é": false,
	} {
		if got := validGitProtocol(v); got != want {
			t.Errorf("validGitProtocol(%q) = %v", v, got)
		}
	}
}
