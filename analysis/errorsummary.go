package analysis

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelfr/otel-flightrecorder/internal/rpccode"
)

// A failed span's verdict leads with the failure: someone opening an error
// span wants the error first and its timing second. The failure is read
// from the span itself (the execution trace holds neither statuses nor
// attributes), under OpenTelemetry's semantic conventions, with the keys of
// older conventions as fallbacks where instrumentations still emit them.

// Limits of an error summary, in bytes: a message or a downstream can be
// anything (a stack trace, a URL with a long path), and a verdict is one
// line that a person reads in a span's detail view.
const (
	maxErrorMessage    = 200
	maxErrorDownstream = 160
	maxErrorSummary    = 400
)

const (
	keyHTTPStatus       = attribute.Key("http.response.status_code")
	keyHTTPStatusOld    = attribute.Key("http.status_code")
	keyHTTPMethod       = attribute.Key("http.request.method")
	keyHTTPMethodOld    = attribute.Key("http.method")
	keyURLFull          = attribute.Key("url.full")
	keyURLFullOld       = attribute.Key("http.url")
	keyServerAddress    = attribute.Key("server.address")
	keyServerAddressOld = attribute.Key("net.peer.name")
	keyServerPort       = attribute.Key("server.port")
	keyServerPortOld    = attribute.Key("net.peer.port")
	keyGRPCStatus       = attribute.Key("rpc.grpc.status_code")
	keyRPCStatus        = attribute.Key("rpc.response.status_code")
	keyRPCService       = attribute.Key("rpc.service")
	keyRPCMethod        = attribute.Key("rpc.method")
	keyExceptionType    = attribute.Key("exception.type")
	keyExceptionMessage = attribute.Key("exception.message")
	exceptionEventName  = "exception"
)

// ErrorSummary returns one line saying how span failed, or "" when it did
// not. [Diagnoser] puts it in [Span.Error], so that the verdict of a failed
// span leads with it; callers of [Analyze] can do the same.
//
// A span failed when its status is Error, when it recorded an "exception"
// event, or when its status is not Ok and its HTTP or gRPC status code is
// an error under the semantic conventions: an HTTP status of 500 or more
// for a server span, 400 or more for the others; for gRPC any code but OK
// for a client span, and Unknown, DeadlineExceeded, Unimplemented,
// Internal, Unavailable or DataLoss for the others.
//
// The summary is the status code (the gRPC code's name, "HTTP 503"), the
// failing downstream for a client span (the RPC's service and method and
// its server.address, or the HTTP method and url.full without its query),
// then the message: the last exception event's exception.type (left out
// for Go's generic error types, such as *errors.errorString) and
// exception.message, and the status description when it says more. For
// example
//
//	Unavailable from inventory.Inventory/Reserve (server.address inventory:50051): connection refused
//	HTTP 503 from GET http://inventory:8080/stock: upstream unavailable
//	*net.OpError: dial tcp 10.0.0.7:5432: connect: connection refused
//
// "exception" or "status Error" stands for a failure that says nothing
// more. Control
// characters and runs of white space become one space; the message is cut
// to 200 bytes, the downstream to 160 and the summary to 400, each cut
// marked with "…".
func ErrorSummary(span sdktrace.ReadOnlySpan) string {
	if span == nil {
		return ""
	}
	// Each accessor of an SDK span copies the span: call each once.
	status := span.Status()
	kind := span.SpanKind()
	var f failure
	f.read(span.Attributes())
	events := span.Events()
	for i := len(events) - 1; i >= 0; i-- {
		if events[i].Name == exceptionEventName {
			f.exception = true
			for _, kv := range events[i].Attributes {
				switch kv.Key {
				case keyExceptionType:
					f.excType = kv.Value.String()
				case keyExceptionMessage:
					f.excMessage = kv.Value.String()
				}
			}
			break
		}
	}
	return f.summary(status, kind)
}

// failure holds what a span says about its failure.
type failure struct {
	httpStatus int64 // 0 when absent
	// grpcCode is the gRPC status code, -1 when absent or unknown;
	// rpcStatus is the raw value of rpc.response.status_code when it is
	// not a gRPC code.
	grpcCode  int64
	rpcStatus string

	method, url, address, port string
	rpcService, rpcMethod      string

	exception           bool
	excType, excMessage string
}

// read takes the attributes that describe a failure, preferring the
// current semantic conventions' keys to the older ones.
func (f *failure) read(attrs []attribute.KeyValue) {
	f.grpcCode = -1
	var httpOld int64
	var methodOld, urlOld, addressOld, portOld string
	grpcOld := int64(-1)
	for _, kv := range attrs {
		switch kv.Key {
		case keyHTTPStatus:
			f.httpStatus = intValue(kv.Value)
		case keyHTTPStatusOld:
			httpOld = intValue(kv.Value)
		case keyHTTPMethod:
			f.method = kv.Value.String()
		case keyHTTPMethodOld:
			methodOld = kv.Value.String()
		case keyURLFull:
			f.url = kv.Value.String()
		case keyURLFullOld:
			urlOld = kv.Value.String()
		case keyServerAddress:
			f.address = kv.Value.String()
		case keyServerAddressOld:
			addressOld = kv.Value.String()
		case keyServerPort:
			f.port = kv.Value.String()
		case keyServerPortOld:
			portOld = kv.Value.String()
		case keyRPCStatus:
			if c, ok := grpcCodeOf(kv.Value); ok {
				f.grpcCode = c
			} else {
				f.rpcStatus = kv.Value.String()
			}
		case keyGRPCStatus:
			if c, ok := grpcCodeOf(kv.Value); ok {
				grpcOld = c
			}
		case keyRPCService:
			f.rpcService = kv.Value.String()
		case keyRPCMethod:
			f.rpcMethod = kv.Value.String()
		}
	}
	f.httpStatus = cmpOr(f.httpStatus, httpOld)
	f.method = cmpOr(f.method, methodOld)
	f.url = cmpOr(f.url, urlOld)
	f.address = cmpOr(f.address, addressOld)
	f.port = cmpOr(f.port, portOld)
	if f.grpcCode < 0 && f.rpcStatus == "" {
		f.grpcCode = grpcOld
	}
}

func cmpOr[T comparable](a, b T) T {
	var zero T
	if a != zero {
		return a
	}
	return b
}

// grpcServerErrors is the bit set of the gRPC codes that the semantic
// conventions count as errors on a server span: Unknown, DeadlineExceeded,
// Unimplemented, Internal, Unavailable and DataLoss.
const grpcServerErrors = 1<<2 | 1<<4 | 1<<12 | 1<<13 | 1<<14 | 1<<15

func (f *failure) httpError(kind trace.SpanKind) bool {
	if kind == trace.SpanKindServer {
		return f.httpStatus >= 500
	}
	return f.httpStatus >= 400
}

func (f *failure) grpcError(kind trace.SpanKind) bool {
	if f.grpcCode <= 0 {
		return false
	}
	return kind == trace.SpanKindClient || grpcServerErrors&(1<<f.grpcCode) != 0
}

func (f *failure) summary(status sdktrace.Status, kind trace.SpanKind) string {
	failed := status.Code == codes.Error || f.exception ||
		(status.Code != codes.Ok && (f.httpError(kind) || f.grpcError(kind)))
	if !failed {
		return ""
	}
	var head string
	switch {
	case f.grpcCode > 0:
		head = grpcCodeName(f.grpcCode)
	case f.rpcStatus != "":
		head = oneLine(f.rpcStatus, maxErrorMessage)
	case f.httpStatus >= 400:
		head = "HTTP " + strconv.FormatInt(f.httpStatus, 10)
	}
	if kind == trace.SpanKindClient {
		if ds := f.downstream(); ds != "" && head != "" {
			head += " from " + ds
		} else if ds != "" {
			head = ds
		}
	}
	msg := f.message(oneLine(status.Description, maxErrorMessage))
	switch {
	case head != "" && msg != "":
		return oneLine(head+": "+msg, maxErrorSummary)
	case head != "":
		return head
	case msg != "":
		return oneLine(msg, maxErrorSummary)
	case f.exception:
		return "exception"
	}
	return "status Error"
}

// downstream names what a client span called.
func (f *failure) downstream() string {
	addr := f.address
	if addr != "" && f.port != "" {
		addr += ":" + f.port
	}
	var ds string
	if f.rpcService != "" || f.rpcMethod != "" || f.grpcCode >= 0 || f.rpcStatus != "" {
		// Newer conventions put the fully qualified method in rpc.method
		// and drop rpc.service.
		switch ds = f.rpcMethod; {
		case ds == "":
			ds = f.rpcService
		case f.rpcService != "" && !strings.Contains(ds, "/"):
			ds = f.rpcService + "/" + ds
		}
		switch {
		case ds != "" && addr != "":
			ds += " (server.address " + addr + ")"
		case ds == "":
			ds = addr
		}
	} else {
		// The query and fragment say which request, not which downstream,
		// and are where secrets and length hide.
		u, _, _ := strings.Cut(f.url, "?")
		u, _, _ = strings.Cut(u, "#")
		if u == "" {
			u = addr
		}
		if u == "" {
			return "" // a method alone names no downstream
		}
		ds = strings.TrimSpace(f.method + " " + u)
	}
	return oneLine(ds, maxErrorDownstream)
}

// message combines the exception with desc, the status description: one
// of them when it contains the other, both otherwise.
func (f *failure) message(desc string) string {
	msg := oneLine(f.excMessage, maxErrorMessage)
	exc := msg
	if t := oneLine(f.excType, maxErrorMessage); t != "" && !genericGoError[t] {
		exc = t
		if msg != "" {
			exc += ": " + msg
		}
	}
	switch {
	case exc == "":
		return desc
	case desc == "" || strings.Contains(exc, desc):
		return exc
	case msg != "" && strings.Contains(desc, msg):
		return desc
	}
	return desc + " (exception " + exc + ")"
}

// genericGoError holds the exception.type values that span.RecordError
// gives Go's plain error values: they say nothing the message does not.
var genericGoError = map[string]bool{
	"*errors.errorString": true,
	"*fmt.wrapError":      true,
	"*fmt.wrapErrors":     true,
	"*errors.joinError":   true,
}

func grpcCodeName(c int64) string {
	if name, ok := rpccode.Name(c); ok {
		return name
	}
	return "gRPC code " + strconv.FormatInt(c, 10)
}

// grpcCodeOf reads a gRPC status code: a number, or a name as gRPC's
// protocol spells it ("UNAVAILABLE", "CANCELLED") or as Go does.
func grpcCodeOf(v attribute.Value) (int64, bool) {
	switch v.Type() {
	case attribute.INT64:
		return v.AsInt64(), v.AsInt64() >= 0 && v.AsInt64() < 32
	case attribute.STRING:
	default:
		return 0, false
	}
	s := v.AsString()
	if c, err := strconv.ParseInt(s, 10, 64); err == nil {
		return c, c >= 0 && c < 32
	}
	if c, ok := rpccode.Parse(s); ok {
		return int64(c), true
	}
	// Otherwise as Go spells it, or in another case.
	name := strings.ReplaceAll(s, "_", "")
	if strings.EqualFold(name, "CANCELLED") {
		return 1, true
	}
	for c := int64(0); ; c++ {
		n, ok := rpccode.Name(c)
		if !ok {
			return 0, false
		}
		if strings.EqualFold(name, n) {
			return c, true
		}
	}
}

// intValue reads an integer attribute, or its decimal string; 0 otherwise.
func intValue(v attribute.Value) int64 {
	switch v.Type() {
	case attribute.INT64:
		return v.AsInt64()
	case attribute.STRING:
		n, _ := strconv.ParseInt(v.AsString(), 10, 64)
		return n
	}
	return 0
}

// oneLine returns s on one line, in valid UTF-8, within limit bytes: each
// run of white space and control characters becomes one space, the ends
// are trimmed, invalid bytes become U+FFFD, and a cut is marked with "…"
// (within the limit). It reads at most 4*limit bytes of s.
func oneLine(s string, limit int) string {
	const ellipsis = "…"
	// A run of white space can be long; past 4*limit bytes the rest is cut
	// whatever it holds.
	cutInput := len(s) > 4*limit
	if cutInput {
		n := 4 * limit
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n]
	}
	var b strings.Builder
	space := false
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
		if b.Len() > limit {
			break
		}
	}
	out := b.String()
	if len(out) <= limit && !cutInput {
		return out
	}
	if len(out)+len(ellipsis) <= limit {
		return out + ellipsis
	}
	cut := limit - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(out[cut]) {
		cut--
	}
	return strings.TrimRight(out[:cut], " ") + ellipsis
}
