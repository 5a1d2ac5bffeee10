#!/usr/bin/env python3
"""How precise can the second step of ../shared/reference/finetune_two_steps be? Reruns the two SGD
steps in PyTorch float32 (2 threads), float32 with a 1e-7 relative perturbation of the parameters
after step 0, and float64, and prints the worst relative difference of the gradient L2 norms
between them and against the reference, and how far each run's after_* tensors are from the reference's. (Investigation tool; the Swift tests do not use it.)

usage: python3 tools/finetune_sensitivity.py [--shared ../shared]
"""
import argparse
import torch, torchvision, numpy as np, json
torch.set_num_threads(2)
ap=argparse.ArgumentParser(); ap.add_argument('--shared', default='../shared'); R=ap.parse_args().shared+'/reference/'
ref=json.load(open(R+'finetune_two_steps/steps.json'))
def run(noise, seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    m=torchvision.models.resnet18()
    m.load_state_dict(torch.load(R+'resnet18-ref.pth'))
    m.fc=torch.nn.Linear(512,2)
    m.fc.weight.data=torch.from_numpy(np.load(R+'finetune_two_steps/fc_init_weight.npy'))
    m.fc.bias.data=torch.from_numpy(np.load(R+'finetune_two_steps/fc_init_bias.npy'))
    m=m.to(dtype)
    m.train()
    x=torch.from_numpy(np.load(R+'model_input.npy')[0:4]).to(dtype)
    y=torch.tensor([0,1,1,0])
    opt=torch.optim.SGD(m.parameters(),lr=0.001,momentum=0.9)
    res=[]
    for s in range(2):
        opt.zero_grad()
        out=m(x); loss=torch.nn.functional.cross_entropy(out,y); loss.backward()
        res.append({n:p.grad.norm().item() for n,p in m.named_parameters()})
        opt.step()
        if s==0 and noise>0:
            with torch.no_grad():
                for p in m.parameters(): p.mul_(1+noise*torch.randn_like(p))
    run.after[(noise, str(dtype))] = dict(m.state_dict())
    return res
run.after = {}
AFTER=['fc.weight','fc.bias','conv1.weight','bn1.running_mean','bn1.running_var','bn1.weight','layer4.1.bn2.running_var']
def after_errors(key):
    sd = run.after[key]
    out = {}
    for n in AFTER:
        want = np.load(R+'finetune_two_steps/after_'+n+'.npy').astype(np.float64)
        got = sd[n].double().numpy()
        out[n] = float(np.linalg.norm(got-want)/np.linalg.norm(want))
    return out
base=run(0)
for label,r in [('noise1e-7',run(1e-7)),('float64',run(0,dtype=torch.float64)),('ref',[s['grad_l2'] for s in ref['steps']])]:
    for s in range(2):
        worst=max((abs(r[s][k]-base[s][k])/base[s][k],k) for k in base[s])
        print(label,'step',s,'worst rel vs local float32 torch',worst)
f64=run(0,dtype=torch.float64)
for s in range(2):
    worst=max((abs(ref['steps'][s]['grad_l2'][k]-f64[s][k])/f64[s][k],k) for k in f64[s])
    print('ref vs float64 step',s,worst)
for key in run.after:
    e = after_errors(key)
    print('after_* rel error vs reference, run', key, {k: f'{v:.2e}' for k, v in e.items()})
