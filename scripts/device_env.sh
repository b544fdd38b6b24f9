# scripts/device_env.sh: source on a GPU machine that lacks Check/jansson/PCRE2 headers (the lent device
# machine): unpacks the Debian .debs carried in .debs/ (made here with `apt-get download check
# libjansson-dev libjansson4 libpcre2-dev libpcre2-8-0 libpcre2-16-0 libpcre2-32-0 libpcre2-posix3
# libsubunit-dev libsubunit0 nettle-dev libmicrohttpd-dev libmicrohttpd12`) into /opt/sysroot and points pkg-config, the compiler and the loader at it.
sysroot=/opt/sysroot
if [ ! -d "$sysroot/usr" ]; then
    mkdir -p "$sysroot"
    for f in .debs/*.deb; do dpkg -x "$f" "$sysroot"; done
    sed -i "s|^prefix=/usr|prefix=$sysroot/usr|" "$sysroot"/usr/lib/x86_64-linux-gnu/pkgconfig/*.pc
    # -dev packages whose runtime library the machine already has (e.g. libnettle.so -> the system's
    # libnettle.so.8): point the dangling .so link at the system copy instead of carrying another one.
    for l in "$sysroot"/usr/lib/x86_64-linux-gnu/*.so; do
        [ -e "$l" ] || ln -sfn "/usr/lib/x86_64-linux-gnu/$(readlink "$l")" "$l"
    done
fi
# libmicrohttpd.pc names gnutls as Requires.private, and the machine has libgnutls30 but not its .pc:
# duet links libmicrohttpd dynamically, so the private requirement is dropped.
sed -i 's/^Requires.private:.*gnutls.*$/Requires.private:/' "$sysroot"/usr/lib/x86_64-linux-gnu/pkgconfig/libmicrohttpd.pc 2>/dev/null
export PKG_CONFIG_PATH="$sysroot/usr/lib/x86_64-linux-gnu/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export LD_LIBRARY_PATH="$sysroot/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
