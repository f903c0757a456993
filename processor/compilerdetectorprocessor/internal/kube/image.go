package kube // import "github.com/compilerwatch/compilerwatch/processor/compilerdetectorprocessor/internal/kube"

import "strings"

// ImageRef is an image reference split as written in the pod spec. Nothing is expanded: "nginx" stays "nginx",
// not "docker.io/library/nginx", because users match allowlists against what they wrote.
type ImageRef struct {
	// Name is the repository without tag or digest, including any registry host and port.
	Name string
	// Tag is empty when the reference has none (no "latest" is invented).
	Tag string
	// Digest is "sha256:..." when the reference pins one.
	Digest string
}

// ParseImage splits "registry:5000/team/app:1.2@sha256:..." into name, tag and digest. It returns substrings of
// ref, so it does not allocate.
func ParseImage(ref string) ImageRef {
	var r ImageRef
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		r.Digest = ref[i+1:]
		ref = ref[:i]
	}
	// A colon after the last slash separates the tag; one before it belongs to a registry port ("reg:5000/app").
	if i := strings.LastIndexByte(ref, ':'); i >= 0 && i > strings.LastIndexByte(ref, '/') {
		r.Tag = ref[i+1:]
		ref = ref[:i]
	}
	r.Name = ref
	return r
}

// RepoDigest returns the "repository@sha256:..." form of a container status imageID, or "" when the imageID
// carries no repository digest (containerd and CRI-O report a bare "sha256:..." image id for locally built
// images, which is not a repo digest).
func RepoDigest(imageID string) string {
	// Docker (dockershim, cri-dockerd) reports "docker-pullable://repo@sha256:..."; other runtimes report it bare.
	if i := strings.Index(imageID, "://"); i >= 0 {
		imageID = imageID[i+3:]
	}
	at := strings.IndexByte(imageID, '@')
	if at <= 0 || at == len(imageID)-1 || !strings.Contains(imageID[at+1:], ":") {
		return ""
	}
	return imageID
}

// ImageID returns the "sha256:<64 hex>" digest a container status imageID carries, or "" when it carries none:
// containerd's bare "sha256:..." id of a locally imported image, the repository digest of "repo@sha256:..." and
// Docker's "docker-pullable://repo@sha256:..." or "docker://sha256:...".
func ImageID(imageID string) string {
	if i := strings.Index(imageID, "://"); i >= 0 {
		imageID = imageID[i+3:]
	}
	if i := strings.LastIndexByte(imageID, '@'); i >= 0 {
		imageID = imageID[i+1:]
	}
	const prefix = "sha256:"
	if len(imageID) != len(prefix)+64 || !strings.HasPrefix(imageID, prefix) {
		return ""
	}
	for i := len(prefix); i < len(imageID); i++ {
		if c := imageID[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return ""
		}
	}
	return imageID
}
