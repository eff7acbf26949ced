#!/usr/bin/env bash
# Carries sctape's build dependencies to a machine without network (the GPU
# machine): download the Debian packages here, unpack them there into a
# prefix, and point CMake and pkg-config at it.
#
#   bash scripts/gpu-deps.sh                      # here, with apt network: .debs into .deps/
#   bash scripts/gpu-deps.sh --tools              # also cmake and ninja and their libraries
#   (SCTAPE_DEPS_DIR=DIR puts the .debs elsewhere than .deps/)
#   eval "$(bash scripts/gpu-deps.sh --unpack /tmp/sctape-deps)"   # there: unpack, print exports
#
# --unpack prints only `export ...` lines on standard output (progress goes to
# standard error), so `eval "$(...)"` sets CMAKE_PREFIX_PATH, CMAKE_LIBRARY_PATH,
# PKG_CONFIG_PATH, LD_LIBRARY_PATH and PATH for the configure, build and test
# that follow. It needs only dpkg-deb, or ar and tar where there is no dpkg.
# The packages are Debian 12 (bookworm) amd64 builds; the CUDA toolkit itself
# is not among them (the GPU machine brings its own nvcc). Open MPI is among
# them: unpacked, it runs from the prefix with OPAL_PREFIX=PREFIX/usr and
# PMIX_INSTALL_PREFIX=PREFIX/usr/lib/x86_64-linux-gnu/pmix2 (gpu-checks.sh sets both).
set -euo pipefail
cd "$(dirname "$0")/.."
deps_dir="${SCTAPE_DEPS_DIR:-$PWD/.deps}"   # git-ignored

# The project's -dev packages and the runtime libraries they link to, and
# pkg-config (CMakeLists.txt finds FFTW through it; GPU machines often lack it).
packages=(libeigen3-dev nlohmann-json3-dev
          libbenchmark-dev libbenchmark1debian
          catch2
          libfftw3-dev libfftw3-bin libfftw3-double3 libfftw3-single3 libfftw3-long3 libfftw3-quad3
          pkgconf pkgconf-bin libpkgconf3
          # Open MPI for gpu-checks.sh's mpi_cuda stage (the mpi-cuda preset):
          # headers, mpirun/orted, and the libraries its binaries and plugins
          # load (ldd of orterun, orted, libmpi and its plugins here)
          libopenmpi-dev libopenmpi3 openmpi-bin openmpi-common
          libhwloc15 libevent-2.1-7 libevent-core-2.1-7 libevent-pthreads-2.1-7 libpmix2 libfabric1 libucx0
          libibverbs1 ibverbs-providers librdmacm1 libpsm2-2 libpsm-infinipath1 libnl-3-200 libnl-route-3-200
          libnuma1 libmunge2 libltdl7 libatomic1)
# --tools: the build tools and their libraries (the closure apt computes,
# without the packages every Debian system has).
tools=(cmake cmake-data ninja-build)

usage() {
    sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
}

download() {
    local with_tools=$1
    command -v apt-get >/dev/null || { echo "gpu-deps: apt-get not found (run this on Debian with network)" >&2; exit 1; }
    local list=("${packages[@]}")
    if [ "$with_tools" = 1 ]; then
        # dependency closure of the tools, minus essential/base libraries
        mapfile -t closure < <(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
            --no-breaks --no-replaces --no-enhances --no-pre-depends "${tools[@]}" 2>/dev/null |
            grep -E '^[a-z0-9]' | sort -u |
            grep -vxE 'libc6|libgcc-s1|libstdc\+\+6|gcc-[0-9]+-base|zlib1g|debconf|dpkg|tar|coreutils|base-files|usrmerge|usr-is-merged|init-system-helpers|procps|libproc2-0|perl|perl-base|perl-modules-.*|libperl.*|lib.*-perl|libsystemd0|libelogind0|libgdbm.*|libdb5\.3|libcrypt1|libselinux1|libpcre2-8-0')
        list+=("${closure[@]}")
    fi
    mkdir -p "$deps_dir"
    echo "gpu-deps: downloading ${#list[@]} packages into $deps_dir" >&2
    # apt-get download writes into the current directory
    (cd "$deps_dir" && apt-get download "${list[@]}" >&2)
    ls -1 "$deps_dir"/*.deb | sed 's|.*/||' >&2
    echo "gpu-deps: copy the repository (with .deps/) to the GPU machine and run" >&2
    echo "  eval \"\$(bash scripts/gpu-deps.sh --unpack /tmp/sctape-deps)\"" >&2
}

extract_deb() {  # extract_deb FILE.deb PREFIX
    if command -v dpkg-deb >/dev/null; then
        dpkg-deb -x "$1" "$2"
    else
        local member
        member=$(ar t "$1" | grep '^data\.tar')
        case "$member" in
            *.xz) ar p "$1" "$member" | tar -xJ -C "$2" ;;
            *.zst) ar p "$1" "$member" | zstd -dc | tar -x -C "$2" ;;
            *.gz) ar p "$1" "$member" | tar -xz -C "$2" ;;
            *) ar p "$1" "$member" | tar -x -C "$2" ;;
        esac
    fi
}

unpack() {
    local prefix=$1
    shopt -s nullglob
    local debs=("$deps_dir"/*.deb)
    if [ ${#debs[@]} -eq 0 ]; then
        echo "gpu-deps: no packages in $deps_dir (run 'bash scripts/gpu-deps.sh' where apt has network first)" >&2
        exit 1
    fi
    mkdir -p "$prefix"
    prefix=$(cd "$prefix" && pwd)
    for deb in "${debs[@]}"; do extract_deb "$deb" "$prefix"; done
    local multiarch=x86_64-linux-gnu
    if command -v dpkg-architecture >/dev/null; then multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo "$multiarch"); fi
    local usr="$prefix/usr" lib="$prefix/usr/lib/$multiarch"
    # pkg-config files say prefix=/usr: make them point into the prefix
    for pc in "$lib"/pkgconfig/*.pc "$usr"/share/pkgconfig/*.pc; do
        sed -i "s|^prefix=/usr\$|prefix=$usr|; s|^libdir=/usr/|libdir=$usr/|; s|^includedir=/usr/|includedir=$usr/|" "$pc"
    done
    # absolute symlinks into /usr would leave the prefix: make them relative to it
    while IFS= read -r link; do
        local target
        target=$(readlink "$link")
        case "$target" in /*) ln -sfn "$prefix$target" "$link" ;; esac
    done < <(find "$prefix" -type l)
    echo "gpu-deps: unpacked ${#debs[@]} packages into $prefix" >&2
    cat <<EOF
export CMAKE_PREFIX_PATH="$usr\${CMAKE_PREFIX_PATH:+:\$CMAKE_PREFIX_PATH}"
export CMAKE_LIBRARY_PATH="$lib\${CMAKE_LIBRARY_PATH:+:\$CMAKE_LIBRARY_PATH}"
export PKG_CONFIG_PATH="$lib/pkgconfig:$usr/share/pkgconfig\${PKG_CONFIG_PATH:+:\$PKG_CONFIG_PATH}"
export LD_LIBRARY_PATH="$lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export PATH="$usr/bin:\$PATH:/usr/local/cuda/bin"
EOF
}

case "${1:-}" in
    "") download 0 ;;
    --tools) download 1 ;;
    --unpack)
        [ -n "${2:-}" ] || { echo "gpu-deps: --unpack needs a PREFIX directory" >&2; exit 2; }
        unpack "$2" ;;
    -h|--help) usage ;;
    *) echo "gpu-deps: unknown option '$1'" >&2; usage >&2; exit 2 ;;
esac
