package bucketstore

import (
	"go.opentelemetry.io/otel/sdk/resource"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/otelfr/otel-flightrecorder/exporter"
)

// Meta is a snapshot's metadata object: its [exporter.Info], with the linked
// spans and their verdicts in Info.Spans, and the resource of the process
// that took it. Info.Path is always empty: the trace is not on the local
// file system.
type Meta struct {
	exporter.Info
	Resource Resource `json:"resource"`

	// Pending is set on a snapshot still in this Store's spool (see
	// [WithSpool]): it is not in the bucket yet, and a viewer reading the
	// bucket, such as a fleet's central viewer, does not list it and
	// answers 404 Not Found for it until its upload completes. It is never
	// set in the bucket.
	Pending bool `json:"pending,omitempty"`
}

// Resource holds the resource attributes that tell a fleet's processes
// apart. A field is empty when the resource did not have the attribute.
// The JSON names are the semantic-convention attribute keys.
type Resource struct {
	ServiceName       string `json:"service.name,omitempty"`
	ServiceNamespace  string `json:"service.namespace,omitempty"`
	ServiceVersion    string `json:"service.version,omitempty"`
	ServiceInstanceID string `json:"service.instance.id,omitempty"`
	HostName          string `json:"host.name,omitempty"`
	K8sPodName        string `json:"k8s.pod.name,omitempty"`
	K8sNamespaceName  string `json:"k8s.namespace.name,omitempty"`
}

// resourceOf picks the attributes of r that a [Resource] holds.
func resourceOf(r *resource.Resource) Resource {
	var out Resource
	for _, kv := range r.Attributes() {
		v := kv.Value.String()
		switch kv.Key {
		case semconv.ServiceNameKey:
			out.ServiceName = v
		case semconv.ServiceNamespaceKey:
			out.ServiceNamespace = v
		case semconv.ServiceVersionKey:
			out.ServiceVersion = v
		case semconv.ServiceInstanceIDKey:
			out.ServiceInstanceID = v
		case semconv.HostNameKey:
			out.HostName = v
		case semconv.K8SPodNameKey:
			out.K8sPodName = v
		case semconv.K8SNamespaceNameKey:
			out.K8sNamespaceName = v
		}
	}
	return out
}
