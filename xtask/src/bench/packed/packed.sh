[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u
R="$ZRAMCTL_RESULTS"
: > "$R/packed.txt"
: > "$R/errors.txt"
err() { echo "$*" >> "$R/errors.txt"; echo "error: $*"; }
[ -e /sys/module/rzram ] || insmod "$ZRAMCTL_MODROOT/lib/modules/$ZRAMCTL_KERNEL_RELEASE/kernel/drivers/block/rzram/rzram.ko" \
  || err "insmod rzram failed"
RZWB=0; [ -e /sys/block/rzram0/backing_dev ] && RZWB=1
RZRAM=0; [ -e /sys/block/rzram0/packed_writeback ] && RZRAM=1
ZCOMP=0; [ -e /sys/block/zram0/compressed_writeback ] && ZCOMP=1
{
  echo "rzram_packed $RZRAM"
  echo "rzram_writeback $RZWB"
  echo "zram_compressed_writeback $ZCOMP"
  echo "kernel $(uname -r)"
  echo "cpu $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "cpus $(nproc)"
  echo "data_pages @PAGES@"
  echo "churn_groups @GROUPS@"
} > "$R/env.txt"
dmsetup remove pkbench 2>/dev/null
dmsetup remove pkbench2 2>/dev/null
dmsetup create pkbench --table "0 @SECTORS@ linear $ZRAMCTL_BACKING_DISK 0" || exit 1
dmsetup remove pkbench3 2>/dev/null
dmsetup create pkbench2 --table "0 @SLICE2_SECTORS@ linear $ZRAMCTL_BACKING_DISK @SECTORS@" || exit 1
dmsetup create pkbench3 --table "0 @SECTORS@ linear $ZRAMCTL_BACKING_DISK @SLICE3_START@" || exit 1
BD=/dev/$(dmsetup info -c --noheadings -o blkdevname pkbench)
BD2=/dev/$(dmsetup info -c --noheadings -o blkdevname pkbench2)
BD3=/dev/$(dmsetup info -c --noheadings -o blkdevname pkbench3)
# Written once, so that no row pays for the host allocating blocks of the
# sparse disk image.
dd if=/dev/zero of="$BD" bs=1M count=@SLICE@ oflag=direct status=none || exit 1
dd if=/dev/zero of="$BD2" bs=1M oflag=direct status=none 2>/dev/null
dd if=/dev/zero of="$BD3" bs=1M count=@SLICE@ oflag=direct status=none || exit 1
# A second rzram device, for the pair (rzram is loaded with one).
[ $RZRAM = 1 ] && [ ! -e /sys/block/rzram1 ] && { read -r _ < /sys/class/rzram-control/hot_add || err "rzram hot_add failed"; }
DATA=/tmp/packed-data.bin
fio --name=gen --filename=$DATA --size=@MIB@M --rw=write --bs=4k --buffer_compress_percentage=60 \
  --refill_buffers --buffer_compress_chunk=512 --output=/dev/null || exit 1

setdev() { # DEV MODE [BACKING]: a fresh lz4 device on the (first) backing slice
  local S=/sys/block/$1 c=0 p=0 bd=${3:-$BD}
  case $2 in compressed) c=1 ;; packed) c=1; p=1 ;; esac
  echo 1 > $S/reset
  if [ -e $S/compressed_writeback ]; then echo $c > $S/compressed_writeback || return 1
  elif [ $c = 1 ]; then return 1; fi
  if [ -e $S/packed_writeback ]; then echo $p > $S/packed_writeback || return 1
  elif [ $p = 1 ]; then return 1; fi
  echo lz4 > $S/comp_algorithm || return 1
  echo "$bd" > $S/backing_dev || return 1
  echo @DISKSIZE@M > $S/disksize || return 1
  echo 0 > $S/writeback_limit_enable
  echo @BATCH@ > $S/writeback_batch_size || return 1
  if [ -e $S/writeback_bio_pages ]; then echo @BATCH@ > $S/writeback_bio_pages || return 1; fi
}

# Pages 20k..20k+2 rewritten with new data, 20k+10..20k+12 discarded, for
# k < @GROUPS@.
churn() { # DEV
  fio --name=rewrite --filename=/dev/$1 --rw=write:68k --bs=12k --size=@CHURN_KIB@k --number_ios=@GROUPS@ \
    --direct=1 --ioengine=psync --buffer_compress_percentage=60 --refill_buffers --buffer_compress_chunk=512 \
    --randseed=4242 --output=/dev/null \
  && fio --name=discard --filename=/dev/$1 --rw=trim:68k --bs=12k --offset=40k --size=@TRIM_KIB@k \
    --number_ios=@GROUPS@ --ioengine=psync --output=/dev/null
}

# The exact compressed size of the pages the churn leaves: the data on a
# device without backing device, before and after discarding those pages.
reference() {
  local S=/sys/block/rzram0 orig compr same orig2 compr2 same2
  echo 1 > $S/reset
  echo 0 > $S/compressed_writeback; echo 0 > $S/packed_writeback
  echo lz4 > $S/comp_algorithm
  echo @DISKSIZE@M > $S/disksize || { err "reference: disksize failed"; return; }
  dd if=$DATA of=/dev/rzram0 bs=1M oflag=direct status=none || { err "reference: writing the data failed"; return; }
  read -r orig compr _ _ _ same _ < $S/mm_stat
  fio --name=refdiscard --filename=/dev/rzram0 --rw=trim:28k --bs=12k --size=@CHURN_KIB@k \
    --number_ios=@GROUPS2@ --ioengine=psync --output=/dev/null || { err "reference: discard failed"; return; }
  read -r orig2 compr2 _ _ _ same2 _ < $S/mm_stat
  echo "ref $orig $compr $same $orig2 $compr2 $same2" >> "$R/packed.txt"
  echo "reference: $((orig / 4096 - same)) pages, $compr bytes; after the churn's discard $((orig2 / 4096 - same2)) pages, $compr2 bytes"
  echo 1 > $S/reset
}

# A row's device set up (on backing slice BACKING, default the first) and
# the data written; what it stored is kept in STORED[ID] for `timed`.
declare -A STORED
fill() { # ID DEV MODE ROUND [BACKING]
  local S=/sys/block/$2 orig compr same
  if ! setdev $2 $3 ${5:-$BD}; then err "$1 round $4: setting up $2 ($3) failed"; echo 1 > $S/reset; return 1; fi
  if ! dd if=$DATA of=/dev/$2 bs=1M oflag=direct status=none; then
    err "$1 round $4: writing the data failed"; echo 1 > $S/reset; return 1
  fi
  read -r orig compr _ _ _ same _ < $S/mm_stat
  STORED[$1]="$orig $compr $same"
  echo all > $S/idle
}

# The timed writeback of every stored page; 0 if it succeeded.
timed() { # ID DEV ROUND
  local S=/sys/block/$2 orig compr same ok t0 t1 count reads writes after
  read -r orig compr same <<< "${STORED[$1]}"
  sync; sleep 0.2
  t0=${EPOCHREALTIME/./}
  if echo idle > $S/writeback; then ok=1; else ok=0; err "$1 round $3: writeback failed"; fi
  t1=${EPOCHREALTIME/./}
  read -r count reads writes < $S/bd_stat
  read -r _ after _ < $S/mm_stat
  echo "wb $1 $3 $orig $compr $same $(( (t1 - t0) * 1000 )) $ok $count $reads $writes $after" >> "$R/packed.txt"
  echo "round $3: $1: $((orig / 4096 - same)) pages ($compr bytes compressed) written back in $(( (t1 - t0) / 1000 )) ms, bd_stat $count $reads $writes"
  [ $ok = 1 ]
}

# rzram only, after its writeback: the read-back latency, then the churn.
after() { # ID DEV ROUND
  local S=/sys/block/$2 reads r2 c2 lat
  read -r _ reads _ < $S/bd_stat
  fio --name=readback --filename=/dev/$2 --rw=randread --bs=4k --size=@DATA_KIB@k --direct=1 --ioengine=psync \
    --iodepth=1 --number_ios=@LAT_IOS@ --runtime=@RUNTIME@ --randseed=16 --percentile_list=50:99 --continue_on_error=read \
    --output-format=json > "$R/lat-$1-$3.json" 2> "$R/lat-$1-$3.err"; lat=$?
  if [ $lat = 0 ]; then lat=1; else
    lat=0; err "$1 round $3: read-back fio failed: $(head -c 300 "$R/lat-$1-$3.err")"
    dmesg | tail -40 > "$R/dmesg-$1-$3.txt"
  fi
  read -r _ r2 _ < $S/bd_stat
  churn $2 || err "$1 round $3: churn failed"
  read -r c2 _ _ < $S/bd_stat
  echo "after $1 $3 $((r2 - reads)) $c2 $lat" >> "$R/packed.txt"
  echo "round $3: $1: $((r2 - reads)) blocks read by the read-back run; $c2 blocks in use after the churn"
}

row() { # ID DEV MODE ROUND: an upstream row, alone on the first slice
  fill $1 $2 $3 $4 && timed $1 $2 $4
  echo 1 > /sys/block/$2/reset
}

# Two rzram rows side by side: both devices set up and filled first (each on
# a slice of its own: the first goes on the first slice in even rounds, on
# the third in odd ones), then their timed writebacks back to back, so that
# a slow spell of the host (seconds long) falls on both or neither; then
# each one's read-back and churn.
pair() { # ROUND ID1 MODE1 ID2 MODE2
  local round=$1 b1=$BD b2=$BD3 ok1=0 ok2=0
  [ $((round % 2)) = 1 ] && { b1=$BD3; b2=$BD; }
  fill $2 rzram0 $3 $round $b1 && ok1=1
  fill $4 rzram1 $5 $round $b2 && ok2=1
  [ $ok1 = 1 ] && { timed $2 rzram0 $round || ok1=0; }
  [ $ok2 = 1 ] && { timed $4 rzram1 $round || ok2=0; }
  [ $ok1 = 1 ] && after $2 rzram0 $round
  [ $ok2 = 1 ] && after $4 rzram1 $round
  echo 1 > /sys/block/rzram0/reset
  echo 1 > /sys/block/rzram1/reset
}

avail() { # DEV...: those whose writeback this kernel has
  local d
  for d; do [ $d = rzram0 ] && [ $RZWB != 1 ] && continue; echo $d; done
}

cost() { # ROUND DEV...: one-page writeback calls, plain mode, the devices side by side taking turns
  local round=$1 dev S bd i b t0 t1 w n=0 devs=()
  local -A ns ok
  shift
  for dev; do
    S=/sys/block/$dev
    if [ $n = 0 ]; then bd=$BD; else bd=$BD2; fi
    n=$((n + 1))
    if ! setdev $dev plain $bd; then err "cost $dev round $round: setup failed"; echo 1 > $S/reset; continue; fi
    if ! dd if=$DATA of=/dev/$dev bs=4k count=@CALL_PAGES@ oflag=direct status=none; then
      err "cost $dev round $round: writing the data failed"; echo 1 > $S/reset; continue
    fi
    devs+=($dev); ns[$dev]=0; ok[$dev]=1
  done
  for ((b = 0; b < @CALLS@; b += @TURN@)); do
    for dev in "${devs[@]}"; do
      S=/sys/block/$dev
      t0=${EPOCHREALTIME/./}
      for ((i = b; i < b + @TURN@; i++)); do echo page_index=$i > $S/writeback || ok[$dev]=0; done
      t1=${EPOCHREALTIME/./}
      ns[$dev]=$(( ${ns[$dev]} + (t1 - t0) * 1000 ))
    done
  done
  for dev in "${devs[@]}"; do
    S=/sys/block/$dev
    [ ${ok[$dev]} = 1 ] || err "cost $dev round $round: a page_index writeback failed"
    read -r _ _ w < $S/bd_stat
    echo "cost $dev $round @CALLS@ ${ns[$dev]} ${ok[$dev]} $w" >> "$R/packed.txt"
    echo "round $round: $dev: @CALLS@ page_index writebacks in $(( ${ns[$dev]} / 1000000 )) ms, $w blocks written"
    echo 1 > $S/reset
  done
}

[ $RZRAM = 1 ] && reference
