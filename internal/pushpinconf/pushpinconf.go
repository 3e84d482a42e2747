// Package pushpinconf writes the configuration of a private Pushpin run,
// the one template that the differential tests (integration_test) and the
// bench (bench) both start Pushpin with, so that the Pushpin caddy-grip is
// compared against and the one it is measured against are the same.
package pushpinconf

import (
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"

	"github.com/caddy-grip/grip/internal/freeport"
)

//go:embed pushpin.conf.tmpl
var confText string

var conf = template.Must(template.New("pushpin.conf").Option("missingkey=error").Parse(confText))

// Ports are the TCP ports of one Pushpin, all on 127.0.0.1.
type Ports struct {
	Client  int // http_port: where clients connect
	Publish int // push_in_http_port: the HTTP publish endpoint
	Pull    int // push_in_spec: ZeroMQ publishing (PULL)
	Sub     int // push_in_sub_specs: ZeroMQ publishing (SUB)
	Command int // command_spec: the handler's ZeroMQ commands
}

// FreePorts picks five free ports.
func FreePorts() (Ports, error) {
	p, err := freeport.Ports(5)
	if err != nil {
		return Ports{}, err
	}
	return Ports{Client: p[0], Publish: p[1], Pull: p[2], Sub: p[3], Command: p[4]}, nil
}

// Options say what differs between two private runs.
type Options struct {
	// Dir gets run/, log/, routes and pushpin.conf. Keep it short: IPC
	// socket paths under it are limited to 107 bytes.
	Dir string
	// IPCPrefix starts the IPC socket names, e.g. "gripdiff-".
	IPCPrefix string
	// LogLevel is Pushpin's log_level: 1 for measurements, 2 as shipped,
	// 3 logs every request.
	LogLevel int
	// Routes are the lines of the routes file, e.g.
	// "* 127.0.0.1:8080,over_http".
	Routes []string
	Ports  Ports
}

// Write creates o.Dir's run and log directories, its routes file and its
// pushpin.conf, and returns the config's path for pushpin --config.
func Write(o Options) (string, error) {
	if o.Dir == "" || o.IPCPrefix == "" || len(o.Routes) == 0 || o.LogLevel < 1 {
		return "", fmt.Errorf("pushpinconf: want a directory, an IPC prefix, routes and a log level, got %+v", o)
	}
	for _, sub := range []string{"run", "log"} {
		if err := os.MkdirAll(filepath.Join(o.Dir, sub), 0o755); err != nil {
			return "", err
		}
	}
	if err := os.WriteFile(filepath.Join(o.Dir, "routes"), []byte(strings.Join(o.Routes, "\n")+"\n"), 0o644); err != nil {
		return "", err
	}
	var b strings.Builder
	if err := conf.Execute(&b, o); err != nil {
		return "", err
	}
	path := filepath.Join(o.Dir, "pushpin.conf")
	return path, os.WriteFile(path, []byte(b.String()), 0o644)
}
