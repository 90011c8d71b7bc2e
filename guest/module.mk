# Guest kit: build/kit/{vmlinuz,initrd.img,root.ext4} from Debian packages
# only (apt-get download + dpkg-deb -x; .debs kept in build/kit/cache/).
# Each output is remade only when the scripts that make it change.
KIT := build/kit
KIT_STAMP := $(KIT)/cache/kver

kit: $(KIT)/vmlinuz $(KIT)/initrd.img $(KIT)/root.ext4

$(KIT_STAMP): guest/fetch.sh
	@mkdir -p $(KIT)/cache
	sh guest/fetch.sh $(KIT)/cache

# Debian's bzImage, byte for byte.
$(KIT)/vmlinuz: $(KIT_STAMP)
	cp "$(KIT)/cache/kernel/boot/vmlinuz-$$(cat $(KIT_STAMP))" $@.tmp && mv $@.tmp $@

$(KIT)/initrd.img: $(KIT_STAMP) guest/initrd.sh guest/init
	sh guest/initrd.sh $(KIT)/cache guest/init $@

$(KIT)/root.ext4: guest/rootfs.sh
	@mkdir -p $(KIT)
	sh guest/rootfs.sh $@ 64
