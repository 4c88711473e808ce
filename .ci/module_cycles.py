#!/usr/bin/env python3
"""Fails when two files of a crate import each other, directly or in a loop.

Reads `use crate::`, `use super::`, `use self::`, child-module `use` lines and `crate::` paths of
every .rs file under the given source directories (test modules left out), maps each path to
the file of the longest module it names, and reports the strongly connected components of
that graph. A heuristic over the text, not the compiler: good enough to keep the layering honest."""
import os,re,sys,itertools
def files(src):
    out={}
    for d,_,fs in os.walk(src):
        for f in fs:
            if f.endswith('.rs'):
                p=os.path.join(d,f); rel=os.path.relpath(p,src)[:-3]
                parts=rel.split('/')
                if parts[-1] in ('mod','lib','main'): parts=parts[:-1]
                out[tuple(parts)]=p
    return out
def resolve(mods,path):
    for n in range(len(path),-1,-1):
        if tuple(path[:n]) in mods: return tuple(path[:n])
def uses(text):
    # expand `use crate::{a, b::{c}}` roughly: collect all crate:: and super:: paths
    res=[]
    for m in re.finditer(r'\buse\s+(crate|super|self)::([^;]*);',text,re.S):
        root=m.group(1); body=m.group(2)
        def expand(prefix,s):
            s=s.strip()
            if s.startswith('{'):
                depth=0;cur='';items=[]
                for ch in s[1:-1]:
                    if ch=='{':depth+=1
                    if ch=='}':depth-=1
                    if ch==',' and depth==0: items.append(cur);cur=''
                    else: cur+=ch
                items.append(cur)
                r=[]
                for it in items:
                    if it.strip(): r+=expand(prefix,it)
                return r
            if '::' in s:
                head,rest=s.split('::',1)
                return expand(prefix+[head.strip()],rest)
            return [prefix+[s.split(' as ')[0].strip()]]
        for p in expand([],body): res.append((root,p))
    for m in re.finditer(r'\buse\s+([a-z_][a-z0-9_]*)::([^;]*);',text,re.S):
        if m.group(1) in ('crate','super','self','std','core'): continue
        res.append(('child',[m.group(1)]+[x for x in re.split(r'::|[{},\s]+',m.group(2)) if x][:1]))
    # A child module named in code (`subscribe::start(...)`) counts as an import of it.
    for m in re.finditer(r'(?<![:\w])([a-z_][a-z0-9_]*)::',text):
        if m.group(1) not in ('crate','super','self','std','core'):
            res.append(('child',[m.group(1)]))
    for m in re.finditer(r'\b(super)::([a-z_][a-z0-9_]*)',text):
        res.append(('super',[m.group(2)]))
    for m in re.finditer(r'\b(crate)::([a-z_][a-z0-9_]*(?:::[a-z_][a-z0-9_]*)*)',text):
        res.append(('crate',m.group(2).split('::')))
    return res
found=False
for src in sys.argv[1:]:
    mods=files(src); g={k:set() for k in mods}
    for mod,p in mods.items():
        text=open(p).read().split("#[cfg(test)]\nmod tests")[0]
        for root,path in uses(text):
            if root=='crate': full=list(path)
            elif root=='super': full=list(mod[:-1]) + list(path) if p.endswith(('mod.rs',)) is False else list(mod[:-1])+list(path)
            else: full=list(mod)+list(path)
            if root=='child' and tuple(list(mod)+[path[0]]) not in mods: continue
            t=resolve(mods,full)
            if t is not None and t!=mod and t!=(): g[mod].add(t)
    # find cycles via SCC
    idx={};low={};st=[];on=set();sccs=[];c=[0]
    def sc(v):
        idx[v]=low[v]=c[0];c[0]+=1;st.append(v);on.add(v)
        for w in g[v]:
            if w not in idx: sc(w);low[v]=min(low[v],low[w])
            elif w in on: low[v]=min(low[v],idx[w])
        if low[v]==idx[v]:
            s=[]
            while True:
                w=st.pop();on.discard(w);s.append(w)
                if w==v:break
            if len(s)>1: sccs.append(s)
    for v in g:
        if v not in idx: sc(v)
    for s in sccs:
        found=True
        print(f"{src}: files import each other: " + ", ".join('::'.join(x) or 'lib' for x in s))
sys.exit(1 if found else 0)
