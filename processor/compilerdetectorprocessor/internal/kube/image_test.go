package kube

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestParseImage(t *testing.T) {
	const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		ref  string
		want ImageRef
	}{
		{"nginx", ImageRef{Name: "nginx"}},
		{"nginx:1.27", ImageRef{Name: "nginx", Tag: "1.27"}},
		{"library/nginx:latest", ImageRef{Name: "library/nginx", Tag: "latest"}},
		{"registry.example/team/app:1.2.3", ImageRef{Name: "registry.example/team/app", Tag: "1.2.3"}},
		{"reg:5000/a/b:tag", ImageRef{Name: "reg:5000/a/b", Tag: "tag"}},
		{"reg:5000/a/b", ImageRef{Name: "reg:5000/a/b"}},
		{"localhost:5000/app", ImageRef{Name: "localhost:5000/app"}},
		{"ghcr.io/org/app@" + digest, ImageRef{Name: "ghcr.io/org/app", Digest: digest}},
		{"reg:5000/app:v1@" + digest, ImageRef{Name: "reg:5000/app", Tag: "v1", Digest: digest}},
		{"[::1]:5000/app:v2", ImageRef{Name: "[::1]:5000/app", Tag: "v2"}},
		{"", ImageRef{}},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			assert.Equal(t, tt.want, ParseImage(tt.ref))
		})
	}
}

func TestRepoDigest(t *testing.T) {
	const d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		name, imageID, want string
	}{
		{"containerd", "docker.io/library/nginx@" + d, "docker.io/library/nginx@" + d},
		{"docker-pullable", "docker-pullable://nginx@" + d, "nginx@" + d},
		{"registry with port", "reg:5000/a/b@" + d, "reg:5000/a/b@" + d},
		{"bare image id", d, ""},
		{"docker bare image id", "docker://" + d, ""},
		{"empty", "", ""},
		{"no algorithm", "nginx@abc", ""},
		{"trailing at", "nginx@", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, RepoDigest(tt.imageID))
		})
	}
}

func TestImageID(t *testing.T) {
	const d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		name, imageID, want string
	}{
		{"containerd bare local id", d, d},
		{"containerd repo digest", "docker.io/library/nginx@" + d, d},
		{"docker-pullable", "docker-pullable://nginx@" + d, d},
		{"docker bare image id", "docker://" + d, d},
		{"registry with port", "reg:5000/a/b@" + d, d},
		{"empty", "", ""},
		{"no algorithm", "nginx@0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", ""},
		{"other algorithm", "nginx@sha512:0123", ""},
		{"short", "sha256:0123", ""},
		{"upper case hex", "sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef", ""},
		{"trailing garbage", d + "x", ""},
		{"tag, no digest", "nginx:1.27", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, ImageID(tt.imageID))
		})
	}
}

func TestNormalizeContainerID(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		name, in, want string
	}{
		{"bare", id, id},
		{"containerd", "containerd://" + id, id},
		{"cri-o", "cri-o://" + id, id},
		{"docker", "docker://" + id, id},
		{"truncated", "containerd://" + id[:12], ""},
		{"uppercase", "ABCDEF" + id[6:], ""},
		{"not hex", "z" + id[1:], ""},
		{"too long", id + "0", ""},
		{"empty", "", ""},
		{"empty after prefix", "containerd://", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, NormalizeContainerID(tt.in))
		})
	}
}

func TestDeploymentFromReplicaSet(t *testing.T) {
	tests := []struct {
		rs, hash, want string
	}{
		{"web-5d8f7c9b6d", "5d8f7c9b6d", "web"},
		{"my-app-v2-7f9c", "7f9c", "my-app-v2"},
		{"web-5d8f7c9b6d", "", ""},          // no hash label: a bare ReplicaSet
		{"web-5d8f7c9b6d", "other", ""},     // label and name disagree
		{"5d8f7c9b6d", "5d8f7c9b6d", ""},    // nothing before the hash
		{"-5d8f7c9b6d", "5d8f7c9b6d", ""},   // empty deployment name
		{"web5d8f7c9b6d", "5d8f7c9b6d", ""}, // no dash separator
	}
	for _, tt := range tests {
		t.Run(tt.rs+"/"+tt.hash, func(t *testing.T) {
			assert.Equal(t, tt.want, deploymentFromReplicaSet(tt.rs, tt.hash))
		})
	}
}
