package event

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestFileOrigin(t *testing.T) {
	const (
		ext4  = 0xef53
		btrfs = 0x9123683e
		fuse  = 0x65735546 // fuse-overlayfs
	)
	root := FileRootMount | FileRootFS
	image := FileOverlayKnown | root
	upper := image | FileOverlayUpper
	tests := []struct {
		name        string
		file        File
		inContainer bool
		want        Origin
	}{
		{"no file", File{}, true, OriginUnknown},
		{"no file, host", File{}, false, OriginUnknown},

		// What the file is wins over where it is.
		{"memfd", File{Magic: MagicTmpfs, Flags: FileMemfd}, true, OriginMemfd},
		{"hugetlb memfd", File{Magic: 0x958458f6, Flags: FileMemfd}, true, OriginMemfd},
		{"memfd, host", File{Magic: MagicTmpfs, Flags: FileMemfd}, false, OriginMemfd},
		{"unlinked on the overlay root", File{Magic: MagicOverlay, Flags: upper | FileUnlinked}, true, OriginDeleted},
		{"unlinked on a node mount", File{Magic: ext4, Flags: FileUnlinked}, true, OriginDeleted},
		{"unlinked on a tmpfs", File{Magic: MagicTmpfs, Flags: FileUnlinked}, true, OriginDeleted},
		{"unlinked, host", File{Magic: ext4, Flags: root | FileUnlinked}, false, OriginDeleted},
		{"tmpfs from the node", File{Magic: MagicTmpfs}, true, OriginTmpfs},
		{"tmpfs mounted in a user namespace", File{Magic: MagicTmpfs, Flags: FileUserNSFS | FileUserNSMount}, true, OriginTmpfs},
		{"ramfs mounted in a user namespace", File{Magic: MagicRamfs, Flags: FileUserNSFS | FileUserNSMount}, true, OriginTmpfs},
		{"tmpfs root", File{Magic: MagicTmpfs, Flags: root}, true, OriginTmpfs},
		{"tmpfs, host", File{Magic: MagicTmpfs}, false, OriginTmpfs},

		// The container's overlay root.
		{"lower layer", File{Magic: MagicOverlay, Flags: image}, true, OriginImage},
		{"upper layer", File{Magic: MagicOverlay, Flags: upper}, true, OriginUpperLayer},
		{"overlay layer not readable (no overlay types)", File{Magic: MagicOverlay, Flags: root}, true, OriginUnknown},
		{"own overlay bind-mounted again", File{Magic: MagicOverlay, Flags: FileOverlayKnown | FileOverlayUpper | FileRootFS}, true, OriginUpperLayer},
		{"own overlay bind-mounted again in a user namespace", File{Magic: MagicOverlay, Flags: FileOverlayKnown | FileRootFS | FileUserNSMount}, true, OriginImage},
		{"rootless overlay root, upper", File{Magic: MagicOverlay, Flags: upper | FileUserNSFS | FileUserNSMount}, true, OriginUpperLayer},
		// Also a root the process chose: an overlay it mounted in a user namespace over runtime files, then chroot.
		{"rootless overlay root, lower", File{Magic: MagicOverlay, Flags: image | FileUserNSFS | FileUserNSMount}, true, OriginUnknown},

		// A container root that is not overlayfs: image and runtime files look alike.
		{"btrfs root", File{Magic: btrfs, Flags: root}, true, OriginUnknown},
		{"fuse-overlayfs root", File{Magic: fuse, Flags: root | FileUserNSFS | FileUserNSMount}, true, OriginUnknown},
		{"plain directory root on the node's disk", File{Magic: ext4, Flags: root}, true, OriginUnknown},
		{"own btrfs root bound again in a user namespace", File{Magic: btrfs, Flags: FileRootFS | FileUserNSMount}, true, OriginUnknown},

		// Other mounts.
		{"bind mount from the node", File{Magic: ext4}, true, OriginHost},
		{"bind mount from the node's root filesystem into a plain directory root", File{Magic: ext4, Flags: FileRootFS}, true, OriginHost},
		{"node overlay bind-mounted in", File{Magic: MagicOverlay, Flags: FileOverlayKnown}, true, OriginHost},
		{"node mount in a user namespace's mount namespace", File{Magic: ext4, Flags: FileUserNSMount}, true, OriginUnknown},
		{"overlay mounted in a user namespace", File{Magic: MagicOverlay, Flags: FileOverlayKnown | FileUserNSFS | FileUserNSMount}, true, OriginUnknown},
		{"overlay mounted in a user namespace, upper", File{Magic: MagicOverlay, Flags: FileOverlayKnown | FileOverlayUpper | FileUserNSFS | FileUserNSMount}, true, OriginUnknown},
		{"fuse mounted in a user namespace", File{Magic: fuse, Flags: FileUserNSFS | FileUserNSMount}, true, OriginUnknown},
		{"detached mount", File{Magic: ext4, Flags: FileUserNSMount}, true, OriginUnknown},

		// A process outside any container sees the node's own files.
		{"host root", File{Magic: ext4, Flags: root}, false, OriginHost},
		{"host, other mount", File{Magic: ext4}, false, OriginHost},
		{"host on an overlay root, lower", File{Magic: MagicOverlay, Flags: image}, false, OriginImage},
		{"host on an overlay root, upper", File{Magic: MagicOverlay, Flags: upper}, false, OriginUpperLayer},
		{"host on an overlay root, layer unknown", File{Magic: MagicOverlay, Flags: root}, false, OriginUnknown},
		{"host, overlay mounted in a user namespace, lower", File{Magic: MagicOverlay, Flags: FileOverlayKnown | FileUserNSFS}, false, OriginUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.file.Origin(tt.inContainer))
		})
	}
}
