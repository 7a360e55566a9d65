#!/usr/bin/env python3
"""A synthetic swap trace for the policy lab (NOT a real program): 40000
pages swapped out in the first 30 s (10 % huge, 5 % same-filled, the rest
lognormal around 1.2 KiB compressed), then 400 swap-ins/s over a Zipf(1.1)
popularity, each freed on swap-in and swapped out again after an
exponential 20 s. Usage: synthetic-trace.py SEED > FILE."""
import random, math, sys
random.seed(int(sys.argv[1]) if len(sys.argv)>1 else 1)
N=40000; dur=300.0
# page sizes: 10% huge, 5% same, rest lognormal around 1300
size={}
for i in range(N):
    r=random.random()
    size[i]=4096 if r<0.1 else (0 if r<0.15 else max(200,min(3200,int(random.lognormvariate(7.1,0.4)))))
# zipf popularity over pages (hot few)
w=[1.0/((i+1)**1.1) for i in range(N)]
import itertools, bisect
cum=list(itertools.accumulate(w)); tot=cum[-1]
ev=[]
t=0.0
# initial swap-out of all pages over first 30 s
for i in range(N):
    ev.append((i*30.0/N,'w',i,size[i]))
stored=set(range(N))
t=30.0
rate=400.0
while t<dur:
    t+=random.expovariate(rate)
    x=random.random()*tot
    p=bisect.bisect_left(cum,x)
    p=(p*7919)%N
    if p in stored:
        ev.append((t,'r',p,0)); ev.append((t+0.0005,'d',p,0)); stored.discard(p)
        # re-swapped out later
        t2=t+random.expovariate(1/20.0)
        ev.append((t2,'w',p,size[p])); 
ev.sort()
print("zramctl-trace 2"); print("meta disksize %d"%(N*2*4096)); print("meta backing %d"%(N*4096)); print("meta sizes exact"); print("meta workload synthetic-%d" % (int(sys.argv[1]) if len(sys.argv) > 1 else 1)); print("meta description synthetic Zipf(1.1) swap trace from scripts/synthetic-trace.py (not a real program)")
last=0
print("0 mem 100000 400000")
for (tt,op,p,s) in ev:
    if tt>dur: break
    us=int(tt*1e6); dt=us-last; last=us
    if op=='w': print("%d w %d %d"%(dt,p,s))
    elif op=='r': print("%d r %d"%(dt,p))
    else: print("%d d %d"%(dt,p))
