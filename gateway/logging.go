package gateway

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// NewLogger returns a JSON logger whose field names Cloud Logging understands
// (severity, message, sourceLocation), so Cloud Run shows levels and groups
// request logs by trace.
func NewLogger(w io.Writer, level string) *slog.Logger {
	lvl, err := parseLevel(level)
	if err != nil {
		lvl = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: lvl,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.MessageKey:
				a.Key = "message"
			case slog.LevelKey:
				// A string, not the slog.Level value, which the JSON handler
				// would encode through encoding/json on every line.
				a.Key = "severity"
				if l, ok := a.Value.Any().(slog.Level); ok {
					a.Value = slog.StringValue(severity(l))
				}
			}
			return a
		},
	}))
}

// parseLevel reads LOG_LEVEL: slog's names in any case ("warning" too, the
// name Cloud Logging uses).
func parseLevel(s string) (slog.Level, error) {
	if strings.EqualFold(s, "warning") {
		s = "warn"
	}
	var l slog.Level
	err := l.UnmarshalText([]byte(s))
	return l, err
}

// severity is Cloud Logging's name for a level.
func severity(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "ERROR"
	case l >= slog.LevelWarn:
		return "WARNING"
	case l >= slog.LevelInfo:
		return "INFO"
	}
	return "DEBUG"
}

// LogWriter batches log lines so that a busy gateway makes one write system
// call per interval instead of one per request. Lines at ERROR are written
// at once, so a crash right after an error still leaves it in the log. Close
// flushes (main defers it).
type LogWriter struct {
	mu    sync.Mutex
	w     io.Writer
	buf   []byte
	max   int
	stop  chan struct{}
	done  chan struct{}
	close sync.Once
}

// NewLogWriter flushes to w every interval, or when 64 KiB are pending.
func NewLogWriter(w io.Writer, every time.Duration) *LogWriter {
	l := &LogWriter{w: w, buf: make([]byte, 0, 64<<10), max: 64 << 10, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				_ = l.Flush()
			case <-l.stop:
				return
			}
		}
	}()
	return l
}

var errorMarker = []byte(`"severity":"ERROR"`)

// Write takes one whole log line (slog's JSON handler writes a record at a time).
func (l *LogWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf)+len(p) > l.max {
		if err := l.flushLocked(); err != nil {
			return 0, err
		}
	}
	l.buf = append(l.buf, p...)
	if bytes.Contains(p, errorMarker) {
		if err := l.flushLocked(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Flush writes what is pending.
func (l *LogWriter) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.flushLocked()
}

func (l *LogWriter) flushLocked() error {
	if len(l.buf) == 0 {
		return nil
	}
	_, err := l.w.Write(l.buf)
	l.buf = l.buf[:0]
	return err
}

// Close stops the flusher and writes what is pending.
func (l *LogWriter) Close() error {
	l.close.Do(func() { close(l.stop); <-l.done })
	return l.Flush()
}
