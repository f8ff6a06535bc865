# memlog for LinuxKit: memlogd, logread, logwrite and init-shim, statically
# linked (musl), in a scratch image. Use it in the init block (its
# /etc/init.d/002-memlogd starts memlogd through init-shim) and as the image
# of the logwrite service; see linuxkit.yml.
#
#   docker build -t memlog/memlog:dev .
#
# The build runs scripts/build-static, the same script that builds static
# binaries without Docker (there with glibc's static libc), for the
# architecture of the build container (x86_64 or aarch64).

# The toolchain the project is developed and tested with.
FROM rust:1.95-alpine AS build
# musl-dev: crt files and libc.a for static linking; file: the script's check
# that every binary is static.
RUN apk add --no-cache musl-dev file
WORKDIR /src
COPY . .
RUN scripts/build-static --target "$(uname -m)-unknown-linux-musl" /out

FROM scratch
COPY --from=build /out/memlogd /out/logread /out/logwrite /out/init-shim /out/memlog-docker-logdriver /usr/bin/
COPY packaging/etc/init.d/002-memlogd /etc/init.d/002-memlogd
