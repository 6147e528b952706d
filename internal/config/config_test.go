package config

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "sqin.json")
	if err := os.WriteFile(file, []byte(`{"addr":"0.0.0.0:9000","issuer":"https://file.example","demo":true,"login-limit-account":7}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		wantAddr   string
		wantIssuer string
		wantLimit  int
	}{
		{"defaults", nil, nil, "127.0.0.1:8080", "", 5},
		{"file", []string{"--config", file}, nil, "0.0.0.0:9000", "https://file.example", 7},
		{"env over file", []string{"--config=" + file}, map[string]string{"SQIN_ISSUER": "https://env.example"}, "0.0.0.0:9000", "https://env.example", 7},
		{"flag over env", []string{"--config", file, "--issuer", "https://flag.example"}, map[string]string{"SQIN_ISSUER": "https://env.example"}, "0.0.0.0:9000", "https://flag.example", 7},
		{"config from env", nil, map[string]string{"SQIN_CONFIG": file}, "0.0.0.0:9000", "https://file.example", 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Config
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			c.Bind(fs)
			if err := Parse(fs, tt.args, func(k string) string { return tt.env[k] }); err != nil {
				t.Fatal(err)
			}
			if c.Addr != tt.wantAddr || c.Issuer != tt.wantIssuer || c.LoginPerAccount != tt.wantLimit {
				t.Fatalf("got addr=%q issuer=%q limit=%d", c.Addr, c.Issuer, c.LoginPerAccount)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	_ = os.WriteFile(bad, []byte(`{"no-such-setting": 1}`), 0o600)
	notJSON := filepath.Join(dir, "x.json")
	_ = os.WriteFile(notJSON, []byte(`addr: x`), 0o600)
	tests := []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"unknown file key", []string{"--config", bad}, nil},
		{"file not JSON", []string{"--config", notJSON}, nil},
		{"missing file", []string{"--config", filepath.Join(dir, "none.json")}, nil},
		{"bad env duration", nil, map[string]string{"SQIN_CODE_TTL": "soon"}},
		{"bad flag", []string{"--demo-users", "many"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Config
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			c.Bind(fs)
			if err := Parse(fs, tt.args, func(k string) string { return tt.env[k] }); err == nil {
				t.Fatal("no error")
			}
		})
	}
	if EnvName("demo-rp-addr") != "SQIN_DEMO_RP_ADDR" {
		t.Fatal(EnvName("demo-rp-addr"))
	}
	var c Config
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	c.Bind(fs)
	if err := Parse(fs, []string{"--code-ttl", "30s"}, func(string) string { return "" }); err != nil || c.CodeTTL != 30*time.Second {
		t.Fatalf("duration flag: %v %v", err, c.CodeTTL)
	}
}

func TestAuditSettings(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		env       map[string]string
		interval  time.Duration
		retention time.Duration
		keyFile   string
		wantErr   bool
	}{
		{"defaults", nil, nil, time.Minute, 0, "", false},
		{"env", nil, map[string]string{"SQIN_AUDIT_HEAD_INTERVAL": "30s", "SQIN_AUDIT_RETENTION": "43800h",
			"SQIN_AUDIT_KEY_FILE": "/etc/sqin/audit.key"}, 30 * time.Second, 43800 * time.Hour, "/etc/sqin/audit.key", false},
		{"flag over env", []string{"--audit-head-interval", "5m"}, map[string]string{"SQIN_AUDIT_HEAD_INTERVAL": "30s"},
			5 * time.Minute, 0, "", false},
		{"bad interval", nil, map[string]string{"SQIN_AUDIT_HEAD_INTERVAL": "often"}, 0, 0, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Config
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			c.Bind(fs)
			err := Parse(fs, tt.args, func(k string) string { return tt.env[k] })
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error: %v", err, tt.wantErr)
			}
			if !tt.wantErr && (c.AuditHeadInterval != tt.interval || c.AuditRetention != tt.retention || c.AuditKeyFile != tt.keyFile) {
				t.Fatalf("interval %s retention %s key file %q", c.AuditHeadInterval, c.AuditRetention, c.AuditKeyFile)
			}
		})
	}
}
