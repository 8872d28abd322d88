package snapstore

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
