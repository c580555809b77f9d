#!/bin/bash
# mk.sh NAME "extra flags": builds kernels_avx2 with flags into a copy of the lib, links k_NAME and h_NAME
set -e
N=$1; F=$2
cd /tmp/s5h
c++ -I/work/main/include -I/work/main/src -O3 -DNDEBUG -fPIC -std=c++20 -mavx2 -mfma -mf16c $F -c /work/main/src/cpu/kernels_avx2.cpp -o /tmp/s5h/kernels_avx2.cpp.o
cp /work/main/build/cpu-helper/libqmm.a lib_$N.a
ar r lib_$N.a kernels_avx2.cpp.o 2>/dev/null || true
ar t lib_$N.a | grep -c kernels_avx2
g++ -O2 -std=c++20 -I /work/main/include -I /work/main/src k.cpp lib_$N.a -lpthread -o k_$N
g++ -O2 -std=c++20 -I /work/main/include h.cpp lib_$N.a -lpthread -o h_$N
